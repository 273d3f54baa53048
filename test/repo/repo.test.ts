/** Repository invariants CI must hold: lint-clean protos, fresh generated code, strict types. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const buf = path.resolve("node_modules/.bin/buf");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? files(p).map((f) => path.join(name, f)) : [name];
  });
}

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  try {
    // buf finds the local protoc-gen-es plugin on PATH.
    const env = { ...process.env, PATH: `${path.resolve("node_modules/.bin")}${path.delimiter}${process.env.PATH}` };
    return { ok: true, output: execFileSync(cmd, args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("repository", () => {
  it("protos pass buf lint", () => {
    const { ok, output } = run(buf, ["lint"]);
    expect(output).toBe("");
    expect(ok).toBe(true);
  });

  it("generated code in gen/ matches the protos (run `npm run generate` after editing proto/)", () => {
    const out = mkdtempSync(path.join(tmpdir(), "chat-gen-"));
    try {
      const { ok, output } = run(buf, ["generate", "-o", out]);
      expect(output).toBe("");
      expect(ok).toBe(true);
      const fresh = files(path.join(out, "gen")).sort();
      expect(files("gen").sort()).toEqual(fresh);
      for (const f of fresh) {
        expect(readFileSync(path.join("gen", f), "utf8"), `gen/${f} is stale`).toBe(readFileSync(path.join(out, "gen", f), "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("type-checks under strict TypeScript", () => {
    const { ok, output } = run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"]);
    expect(output).toBe("");
    expect(ok).toBe(true);
  });
});

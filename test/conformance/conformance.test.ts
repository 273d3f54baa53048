/**
 * The RPC layer against the Connect conformance suite (connectconformance,
 * pinned in infra/harness/conformance.ts): its reference clients (connect-go
 * for Connect, gRPC and gRPC-Web; grpc-go for gRPC) send every server-side
 * case that config.yaml's features select to server-under-test.ts, which
 * serves the suite's ConformanceService through startRpcServer (rpc/). The
 * run fails on any case that fails, and on any case in known-failing.txt
 * that passes (the runner's --known-failing semantics).
 *
 * The first run installs the runner with `go install` (about a minute);
 * later runs take ~10-20 s on two cores. global-setup.ts compiles
 * tsconfig.build.json, which includes the server under test.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureConformanceSuite, type ConformanceSuite } from "../../infra/harness/conformance.js";

const DIR = "test/conformance";
const SERVER = path.resolve("dist/test/conformance/server-under-test.js");
/** The runner is killed (with its servers) after this, so that its output still reaches the report. */
const RUN_LIMIT_MS = 240_000;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
}

function run(command: string, args: string[], limitMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // Its own process group: on a hang, the runner and the servers it started go together.
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, limitMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, timedOut });
    });
  });
}

describe("Connect conformance (server)", () => {
  let suite: ConformanceSuite;

  beforeAll(() => {
    suite = ensureConformanceSuite((line) => process.stderr.write(`${line}\n`));
  }, 600_000);

  it(
    "the RPC stack passes every server case of connectconformance for config.yaml's features",
    async () => {
      expect(existsSync(SERVER), `${SERVER} is missing: compile tsconfig.build.json first`).toBe(true);
      const args = [
        "--mode",
        "server",
        "--conf",
        path.join(DIR, "config.yaml"),
        "--known-failing",
        `@${path.join(DIR, "known-failing.txt")}`,
        // RPCs in flight at once: most cases wait on delays and timeouts, not on the CPU,
        // and the timing checks keep a grace period; 8 (the runner's default) keeps a run
        // to ~10-20 s on two cores.
        "--parallel",
        "8",
        "-v",
        "--",
        process.execPath,
        SERVER,
        suite.descriptorSet,
      ];
      const started = Date.now();
      const result = await run(suite.runner, args, RUN_LIMIT_MS);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const report = `connectconformance ${args.join(" ")}\n${result.output}`;
      if (result.timedOut) throw new Error(`connectconformance did not finish within ${RUN_LIMIT_MS / 1000} s:\n${report}`);
      if (result.code !== 0) {
        throw new Error(`connectconformance exited with ${result.code ?? result.signal} after ${seconds} s:\n${report}`);
      }
      const summary = /^(\d+) passed, (\d+) failed$/m.exec(result.output);
      expect(summary, `no summary line in the runner's output:\n${report}`).not.toBeNull();
      const [passed, failed] = [Number(summary![1]), Number(summary![2])];
      expect(failed, report).toBe(0);
      // A config that selected nothing would "pass" too.
      expect(passed, report).toBeGreaterThan(1000);
      process.stderr.write(`connectconformance: ${passed} passed, ${failed} failed in ${seconds} s\n`);
    },
    RUN_LIMIT_MS + 30_000,
  );
});

/**
 * The disconnect table (realtime/disconnect.ts) is the one place close codes
 * live: the README's table is rendered from it, codes are unique, and the
 * gateway closes no socket with a code of its own.
 */
import { Code } from "@connectrpc/connect";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { expectReadmeTable } from "../support/readme-table.js";
import { closeLabel, DISCONNECT, type Disconnect } from "../../realtime/disconnect.js";

const BEGIN = "<!-- close codes: rendered from realtime/disconnect.ts; test/gateway/disconnect.test.ts checks it -->";
const END = "<!-- end of close codes -->";

function renderTable(): string {
  const rows = (Object.values(DISCONNECT) as Disconnect[]).map(
    (d) =>
      `| ${d.code} | ${d.why} | ${d.advice} | ${d.reconnect ? "yes" : "no"} | ${d.streamCode === undefined ? "—" : `\`${Code[d.streamCode]!.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}\``} |`,
  );
  return [
    "| Code | Why | What the client does | Reconnect | `EventService.Subscribe` ends with |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

describe("disconnect table", () => {
  it("is the README's close-code table", () => {
    expectReadmeTable(BEGIN, END, renderTable());
  });

  it("has one entry per code, each with a metric label of its own", () => {
    const entries = Object.values(DISCONNECT) as Disconnect[];
    expect(new Set(entries.map((d) => d.code)).size).toBe(entries.length);
    expect(new Set(entries.map((d) => d.metric)).size).toBe(entries.length);
    for (const d of entries) {
      expect(Buffer.byteLength(d.reason)).toBeLessThanOrEqual(123);
      expect(closeLabel(d.code)).toBe(d.metric);
    }
    expect(closeLabel(3999)).toBe("3999");
  });

  it("is the only source of close codes in the gateway", () => {
    const offenders = readdirSync("gateway")
      .filter((f) => f.endsWith(".ts"))
      .filter((f) => /\.end\(\s*\d/.test(readFileSync(path.join("gateway", f), "utf8")));
    expect(offenders).toEqual([]);
  });
});

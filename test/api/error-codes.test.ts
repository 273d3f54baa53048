/**
 * One vocabulary of error codes (chat/error-codes.ts) for RPC statuses and
 * socket error frames: it covers every code, its numbers are the WebSocket
 * enum's, and the README's table is rendered from it.
 */
import { Code } from "@connectrpc/connect";
import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { codeName, ERROR_CODES } from "../../chat/error-codes.js";
import { ErrorCode } from "../../gen/chat/v1/error_pb.js";

const BEGIN = "<!-- error codes: rendered from chat/error-codes.ts; test/api/error-codes.test.ts checks it -->";
const END = "<!-- end of error codes -->";

function renderTable(): string {
  return [
    "| Code | gRPC | Connect | WebSocket `error.code` | Retry? | When |",
    "| --- | --- | --- | --- | --- | --- |",
    ...ERROR_CODES.map((e) => `| ${e.code} | \`${e.name.toUpperCase()}\` | \`${e.name}\` | \`${ErrorCode[e.code]}\` (\`ERROR_CODE_${e.name.toUpperCase()}\` in JSON) | ${e.retry} | ${e.when} |`),
  ].join("\n");
}

describe("the error vocabulary", () => {
  it("names every status code once, with the WebSocket enum's number", () => {
    const codes = Object.values(Code).filter((c): c is Code => typeof c === "number");
    expect(ERROR_CODES.map((e) => e.code).sort((a, b) => a - b)).toEqual(codes.sort((a, b) => a - b));
    for (const e of ERROR_CODES) {
      expect(ErrorCode[e.code], e.name).toBe(e.name.toUpperCase());
      expect(codeName(e.code)).toBe(e.name);
    }
  });

  it("is the README's table", () => {
    const readme = readFileSync("README.md", "utf8");
    const start = readme.indexOf(BEGIN);
    const end = readme.indexOf(END);
    expect(start, `README.md lacks the marker ${BEGIN}`).toBeGreaterThan(0);
    // UPDATE_DOCS=1 npx vitest run test/api/error-codes.test.ts rewrites the table.
    if (process.env.UPDATE_DOCS) writeFileSync("README.md", `${readme.slice(0, start + BEGIN.length)}\n${renderTable()}\n${readme.slice(end)}`);
    else expect(readme.slice(start + BEGIN.length, end).trim(), "run with UPDATE_DOCS=1 to rewrite the README's table").toBe(renderTable());
  });
});

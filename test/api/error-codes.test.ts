/**
 * One vocabulary of error codes (chat/error-codes.ts) for RPC statuses and
 * socket error frames: it covers every code, its numbers are the WebSocket
 * enum's, and the README's table is rendered from it.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { expectReadmeTable } from "../support/readme-table.js";
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
    expectReadmeTable(BEGIN, END, renderTable());
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Awaits a call that must fail with the given code; returns the error for more checks. */
export async function expectCode(call: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    expect(Code[e.code], `${e.message}`).toBe(Code[code]);
    if (message) expect(e.rawMessage).toMatch(message);
    return e;
  }
  throw new Error(`expected ${Code[code]}, but the call succeeded`);
}

export { Code };

import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createAuthenticator } from "../../services/auth.js";

const options = {
  jwtSecret: "s".repeat(40),
  adminToken: "admin-token-0123456789",
  defaultTokenTtlSeconds: 3600,
  maxTokenTtlSeconds: 86400,
};

async function code(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("authenticator", () => {
  it("accepts its own tokens and the admin credential", async () => {
    const auth = createAuthenticator(options);
    const { token, expiresAt } = await auth.issueToken(99n, 0);
    expect(expiresAt).toBeGreaterThan(Date.now() + 3500_000);
    expect(await auth.authenticate(`Bearer ${token}`)).toEqual({ kind: "user", userId: 99n, expiresAt });
    expect(await auth.authenticate(`bearer ${options.adminToken}`)).toEqual({ kind: "admin" });
  });

  it("rejects missing, malformed, forged and expired tokens as UNAUTHENTICATED", async () => {
    let now = Date.now();
    const auth = createAuthenticator({ ...options, now: () => now });
    const { token } = await auth.issueToken(5n, 60);
    expect(await code(auth.authenticate(undefined))).toBe(Code.Unauthenticated);
    expect(await code(auth.authenticate("Basic abc"))).toBe(Code.Unauthenticated);
    expect(await code(auth.authenticate("Bearer not-a-jwt"))).toBe(Code.Unauthenticated);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("5")
      .setIssuer("chat")
      .setAudience("chat.v1")
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("x".repeat(40)));
    expect(await code(auth.authenticate(`Bearer ${forged}`))).toBe(Code.Unauthenticated);
    // Verified once (cached), then expired: still rejected.
    await auth.authenticate(`Bearer ${token}`);
    now += 61_000;
    expect(await code(auth.authenticate(`Bearer ${token}`))).toBe(Code.Unauthenticated);
    // And a fresh authenticator that never saw it rejects it too.
    const other = createAuthenticator({ ...options, now: () => now });
    expect(await code(other.authenticate(`Bearer ${token}`))).toBe(Code.Unauthenticated);
  });

  it("rejects a token signed with alg none", async () => {
    const auth = createAuthenticator(options);
    const header = Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url");
    const body = Buffer.from(JSON.stringify({ sub: "1", iss: "chat", aud: "chat.v1", exp: 9999999999 })).toString("base64url");
    expect(await code(auth.authenticate(`Bearer ${header}.${body}.`))).toBe(Code.Unauthenticated);
  });
});

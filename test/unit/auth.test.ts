import { Code, ConnectError } from "@connectrpc/connect";
import { createSigner } from "fast-jwt";
import { describe, expect, it } from "vitest";
import { createAuthenticator } from "../../chat/auth.js";

const options = {
  jwtSecret: "s".repeat(40),
  adminToken: "admin-token-0123456789",
  defaultTokenTtlSeconds: 3600,
  maxTokenTtlSeconds: 86400,
};

function code(check: () => unknown): Code | undefined {
  try {
    check();
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
    expect(auth.authenticate(`Bearer ${token}`)).toEqual({ kind: "user", userId: 99n, expiresAt });
    expect(auth.authenticate(`bearer ${options.adminToken}`)).toEqual({ kind: "admin" });
  });

  it("rejects missing, malformed, forged and expired tokens as UNAUTHENTICATED", async () => {
    let now = Date.now();
    const auth = createAuthenticator({ ...options, now: () => now });
    const { token } = await auth.issueToken(5n, 60);
    expect(code(() => auth.authenticate(undefined))).toBe(Code.Unauthenticated);
    expect(() => auth.authenticate("Basic abc")).toThrow(/malformed authorization/);
    expect(code(() => auth.authenticate("Bearer not-a-jwt"))).toBe(Code.Unauthenticated);
    const claims = { sub: "5", iss: "chat", aud: "chat.v1", exp: Math.floor(now / 1000) + 3600 };
    const forged = createSigner({ key: "x".repeat(40), algorithm: "HS256", noTimestamp: true })(claims);
    expect(code(() => auth.authenticate(`Bearer ${forged}`))).toBe(Code.Unauthenticated);
    const sign = createSigner({ key: options.jwtSecret, algorithm: "HS256", noTimestamp: true });
    expect(code(() => auth.authenticate(`Bearer ${sign({ ...claims, aud: "other" })}`))).toBe(Code.Unauthenticated);
    expect(code(() => auth.authenticate(`Bearer ${sign({ ...claims, iss: "other" })}`))).toBe(Code.Unauthenticated);
    expect(() => auth.authenticate(`Bearer ${sign({ ...claims, sub: "alice" })}`)).toThrow(/bad subject/);
    expect(code(() => auth.authenticate(`Bearer ${sign({ sub: "5", iss: "chat", aud: "chat.v1" })}`))).toBe(Code.Unauthenticated);
    // Verified once (cached), then expired: still rejected.
    auth.authenticate(`Bearer ${token}`);
    now += 61_000;
    expect(() => auth.authenticate(`Bearer ${token}`)).toThrow(/token expired/);
    // And a fresh authenticator that never saw it rejects it too.
    const other = createAuthenticator({ ...options, now: () => now });
    expect(() => other.authenticate(`Bearer ${token}`)).toThrow(/token expired/);
  });

  it("shares one principal per verified token, and never takes a look-alike from the cache", async () => {
    const auth = createAuthenticator(options);
    const { token } = await auth.issueToken(7n, 60);
    const first = auth.authenticate(`Bearer ${token}`);
    // One principal per verified token, shared by its callers (a user's sockets).
    expect(auth.authenticate(`Bearer ${token}`)).toBe(first);
    // Same header and payload, other signature.
    expect(code(() => auth.authenticate(`Bearer ${token.slice(0, -4)}AAAA`))).toBe(Code.Unauthenticated);
  });

  it("rejects a token signed with alg none", () => {
    const auth = createAuthenticator(options);
    const header = Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url");
    const body = Buffer.from(JSON.stringify({ sub: "1", iss: "chat", aud: "chat.v1", exp: 9999999999 })).toString("base64url");
    expect(code(() => auth.authenticate(`Bearer ${header}.${body}.`))).toBe(Code.Unauthenticated);
  });
});

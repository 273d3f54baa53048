/**
 * Credentials: user tokens are HS256 JWTs (fast-jwt) signed with the server
 * key; the admin credential is one bearer value from config. Verification is
 * synchronous (an HMAC), so the gateway can admit a socket within uWS's
 * upgrade handler (see gateway.ts). Verified tokens are cached until they
 * expire, so the post path does not pay an HMAC per request.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createSigner, createVerifier } from "fast-jwt";
import { LRUCache } from "lru-cache";
import { hash, timingSafeEqual } from "node:crypto";
import { MAX_ID } from "../core/ids.js";

export type Principal =
  | { kind: "admin" }
  /** A user; expiresAt (Unix ms) lets long-lived streams end when the token does. */
  | { kind: "user"; userId: bigint; expiresAt?: number };
export type UserPrincipal = Extract<Principal, { kind: "user" }>;

/**
 * The header with which the admin credential acts for a user: trusted
 * components (gateway processes) read and post for their sockets' users.
 */
export const ON_BEHALF_OF_HEADER = "chat-on-behalf-of";

export interface AuthOptions {
  jwtSecret: string;
  adminToken: string;
  defaultTokenTtlSeconds: number;
  maxTokenTtlSeconds: number;
  now?: () => number;
}

export interface Authenticator {
  /** Signs a token for a user; ttlSeconds 0 means the default lifetime. */
  issueToken(userId: bigint, ttlSeconds: number): Promise<{ token: string; expiresAt: number }>;
  /**
   * Checks an "Authorization" header value ("Bearer <token>").
   * Throws ConnectError UNAUTHENTICATED when it is missing, forged or expired.
   */
  authenticate(authorization: string | null | undefined): Principal;
  readonly maxTokenTtlSeconds: number;
}

const ADMIN: Principal = Object.freeze({ kind: "admin" });
/** A verified user token's principal: its expiry is known. */
type VerifiedUser = UserPrincipal & { expiresAt: number };
const ISSUER = "chat";
const AUDIENCE = "chat.v1";

export function createAuthenticator(options: AuthOptions): Authenticator {
  const now = options.now ?? Date.now;
  const adminDigest = digest(options.adminToken);
  // Keyed by 128 bits of the token's SHA-256 (a 16-character string) rather
  // than the ~200-character token, and the principal itself is the value,
  // shared by every caller (a user's sockets): a gateway holds one entry per user.
  const verified = new LRUCache<string, VerifiedUser>({ max: 100_000 });

  const sign = createSigner({ key: options.jwtSecret, algorithm: "HS256", noTimestamp: true });
  // Expiry is checked below against now() (tests move the clock); fast-jwt checks the rest.
  const decode = createVerifier({
    key: options.jwtSecret,
    algorithms: ["HS256"],
    allowedIss: ISSUER,
    allowedAud: AUDIENCE,
    requiredClaims: ["sub", "exp"],
    ignoreExpiration: true,
  });

  const verify = (token: string): VerifiedUser => {
    let payload: { sub?: unknown; exp?: unknown };
    try {
      payload = decode(token) as typeof payload;
    } catch (err) {
      throw new ConnectError("invalid token", Code.Unauthenticated, undefined, undefined, err);
    }
    const userId = userIdOfSubject(payload.sub);
    if (userId === undefined) throw new ConnectError("invalid token: bad subject", Code.Unauthenticated);
    if (typeof payload.exp !== "number") throw new ConnectError("invalid token: bad exp", Code.Unauthenticated);
    return Object.freeze({ kind: "user" as const, userId, expiresAt: payload.exp * 1000 });
  };

  return {
    maxTokenTtlSeconds: options.maxTokenTtlSeconds,

    async issueToken(userId, ttlSeconds) {
      const ttl = ttlSeconds === 0 ? options.defaultTokenTtlSeconds : ttlSeconds;
      const issuedAt = Math.floor(now() / 1000);
      const token = sign({ sub: userId.toString(), iss: ISSUER, aud: AUDIENCE, iat: issuedAt, exp: issuedAt + ttl });
      return { token, expiresAt: (issuedAt + ttl) * 1000 };
    },

    authenticate(authorization) {
      const token = bearerToken(authorization);
      const tokenDigest = digest(token);
      const cacheKey = keyOf(tokenDigest);
      const cached = verified.get(cacheKey);
      // Constant-time for every token that is not cached.
      if (!cached && timingSafeEqual(tokenDigest, adminDigest)) return ADMIN;
      const principal = cached ?? verify(token);
      if (principal.expiresAt <= now()) {
        verified.delete(cacheKey);
        throw new ConnectError("token expired", Code.Unauthenticated);
      }
      if (!cached) verified.set(cacheKey, principal);
      return principal;
    },
  };
}

/**
 * The user id a token's (or ticket's) subject names: a canonical decimal
 * (no leading zeros) within the id range; anything else names no user.
 */
export function userIdOfSubject(subject: unknown): bigint | undefined {
  if (typeof subject !== "string" || !/^[1-9]\d{0,18}$/.test(subject)) return undefined;
  const id = BigInt(subject);
  return id > MAX_ID ? undefined : id;
}

function bearerToken(authorization: string | null | undefined): string {
  if (!authorization) throw new ConnectError("missing bearer token", Code.Unauthenticated);
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) throw new ConnectError('malformed authorization: expected "Bearer <token>"', Code.Unauthenticated);
  return match[1]!;
}

/** Fixed-length digests make the admin comparison constant-time whatever the input length. */
function digest(value: string): Buffer {
  return hash("sha256", value, "buffer");
}

/** Its first 128 bits as a string of 16 one-byte characters, for map keys. */
function keyOf(digest: Buffer): string {
  return digest.toString("latin1", 0, 16);
}

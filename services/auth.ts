/**
 * Credentials: user tokens are HS256 JWTs (jose) signed with the server key;
 * the admin credential is one bearer value from config. Verified tokens are
 * cached until they expire, so the post path does not pay an HMAC per request.
 */
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { LRUCache } from "lru-cache";
import { createHash, timingSafeEqual } from "node:crypto";

export type Principal =
  | { kind: "admin" }
  /** A user; expiresAt (Unix ms) lets long-lived streams end when the token does. */
  | { kind: "user"; userId: bigint; expiresAt?: number };
export type UserPrincipal = Extract<Principal, { kind: "user" }>;

/** Where the authentication interceptor leaves the caller for handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

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
  authenticate(authorization: string | null | undefined): Promise<Principal>;
  readonly maxTokenTtlSeconds: number;
}

const ISSUER = "chat";
const AUDIENCE = "chat.v1";

export function createAuthenticator(options: AuthOptions): Authenticator {
  const key = new TextEncoder().encode(options.jwtSecret);
  const now = options.now ?? Date.now;
  const adminDigest = digest(options.adminToken);
  const verified = new LRUCache<string, { userId: bigint; expiresAt: number }>({ max: 100_000 });

  return {
    maxTokenTtlSeconds: options.maxTokenTtlSeconds,

    async issueToken(userId, ttlSeconds) {
      const ttl = ttlSeconds === 0 ? options.defaultTokenTtlSeconds : ttlSeconds;
      const issuedAt = Math.floor(now() / 1000);
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(userId.toString())
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + ttl)
        .sign(key);
      return { token, expiresAt: (issuedAt + ttl) * 1000 };
    },

    async authenticate(authorization) {
      const token = bearerToken(authorization);
      // Verified user tokens first: the hot path skips hashing. The admin
      // comparison stays constant-time for every token that is not cached.
      const cached = verified.get(token);
      if (cached) {
        if (cached.expiresAt > now()) return { kind: "user", userId: cached.userId, expiresAt: cached.expiresAt };
        verified.delete(token);
        throw new ConnectError("token expired", Code.Unauthenticated);
      }
      if (timingSafeEqual(digest(token), adminDigest)) return { kind: "admin" };
      let subject: string | undefined;
      let expiresAt: number;
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: ["HS256"],
          issuer: ISSUER,
          audience: AUDIENCE,
          requiredClaims: ["sub", "exp"],
          currentDate: new Date(now()),
        });
        subject = payload.sub;
        expiresAt = (payload.exp ?? 0) * 1000;
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) {
          throw new ConnectError("token expired", Code.Unauthenticated, undefined, undefined, err);
        }
        throw new ConnectError("invalid token", Code.Unauthenticated, undefined, undefined, err);
      }
      if (subject === undefined || !/^\d{1,20}$/.test(subject)) {
        throw new ConnectError("invalid token: bad subject", Code.Unauthenticated);
      }
      const userId = BigInt(subject);
      verified.set(token, { userId, expiresAt });
      return { kind: "user", userId, expiresAt };
    },
  };
}

function bearerToken(authorization: string | null | undefined): string {
  if (!authorization) throw new ConnectError("missing bearer token", Code.Unauthenticated);
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) throw new ConnectError('malformed authorization: expected "Bearer <token>"', Code.Unauthenticated);
  return match[1]!;
}

/** Fixed-length digests make the admin comparison constant-time whatever the input length. */
function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

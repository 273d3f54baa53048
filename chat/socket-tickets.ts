/**
 * Socket tickets (chat.v1.SocketService): a user trades its token for a
 * short-lived, single-use ticket to put in the gateway's URL instead of the
 * token. A ticket is an HS256 JWT of its own audience (never accepted as a
 * token, nor a token as a ticket) naming the user, a random id, when it can
 * no longer be redeemed, and when the socket it opens must end (the token's
 * own expiry). Verified synchronously, like tokens, inside uWS's upgrade.
 *
 * Single use holds per gateway process: a process remembers the tickets it
 * redeemed until they expire. A ticket replayed on another gateway process
 * within its 30 s would be taken there once more; its short life bounds that.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createSigner, createVerifier } from "fast-jwt";
import { LRUCache } from "lru-cache";
import { randomBytes } from "node:crypto";
import { userIdOfSubject, type UserPrincipal } from "./auth.js";

export const TICKET_TTL_SECONDS = 30;
const ISSUER = "chat";
const AUDIENCE = "chat.v1.socket";

export interface SocketTickets {
  issue(user: UserPrincipal): { ticket: string; expiresAt: number };
  /** The ticket's user, once; UNAUTHENTICATED when forged, expired or used before. */
  redeem(ticket: string): UserPrincipal;
}

export function createSocketTickets(options: { jwtSecret: string; now?: () => number }): SocketTickets {
  const now = options.now ?? Date.now;
  const sign = createSigner({ key: options.jwtSecret, algorithm: "HS256", noTimestamp: true });
  const decode = createVerifier({
    key: options.jwtSecret,
    algorithms: ["HS256"],
    allowedIss: ISSUER,
    allowedAud: AUDIENCE,
    requiredClaims: ["sub", "exp", "jti", "sexp"],
    ignoreExpiration: true,
  });
  const redeemed = new LRUCache<string, true>({ max: 1_000_000, ttl: (TICKET_TTL_SECONDS + 5) * 1000 });
  return {
    issue(user) {
      const exp = Math.floor(now() / 1000) + TICKET_TTL_SECONDS;
      // The socket ends when the token would have: a ticket never outlives the credential it came from.
      const sexp = user.expiresAt === undefined ? exp : Math.floor(user.expiresAt / 1000);
      const ticket = sign({ sub: user.userId.toString(), iss: ISSUER, aud: AUDIENCE, exp, sexp, jti: randomBytes(16).toString("base64url") });
      return { ticket, expiresAt: exp * 1000 };
    },
    redeem(ticket) {
      let claims: { sub?: unknown; exp?: unknown; jti?: unknown; sexp?: unknown };
      try {
        claims = decode(ticket) as typeof claims;
      } catch (err) {
        throw new ConnectError("invalid ticket", Code.Unauthenticated, undefined, undefined, err);
      }
      const { exp, jti, sexp } = claims;
      const userId = userIdOfSubject(claims.sub);
      if (userId === undefined || typeof exp !== "number" || typeof sexp !== "number" || typeof jti !== "string") {
        throw new ConnectError("invalid ticket", Code.Unauthenticated);
      }
      if (exp * 1000 <= now()) throw new ConnectError("ticket expired: get a new one", Code.Unauthenticated);
      if (redeemed.has(jti)) throw new ConnectError("ticket already used: get a new one", Code.Unauthenticated);
      redeemed.set(jti, true);
      return { kind: "user", userId, expiresAt: sexp * 1000 };
    },
  };
}

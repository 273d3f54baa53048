/**
 * A token is only as good as its user: a correctly signed token whose
 * subject was never created (or no longer exists) must not act. Every RPC
 * with a user principal and every live session asks here first. Users who
 * exist are remembered, so the check costs one cache lookup per request;
 * an unknown id is read from the store each time (no negative caching: a
 * user created a moment later is accepted at once).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { LRUCache } from "lru-cache";
import type { ChatStore } from "../store/store.js";

/** Users remembered as existing, and for how long (nothing deletes users yet; accounts will). */
const REMEMBERED_USERS = 200_000;
const REMEMBER_MS = 10 * 60_000;

export interface KnownUsers {
  /** Resolves when the user exists; rejects with UNAUTHENTICATED when not. */
  require(userId: bigint): Promise<void>;
}

export function createKnownUsers(store: Pick<ChatStore, "getUser">): KnownUsers {
  const known = new LRUCache<bigint, true>({ max: REMEMBERED_USERS, ttl: REMEMBER_MS });
  // Concurrent first requests of one user share one read.
  const reading = new Map<bigint, Promise<void>>();
  const read = async (userId: bigint) => {
    const user = await store.getUser(userId);
    if (!user) throw new ConnectError("invalid token: its user does not exist", Code.Unauthenticated);
    known.set(userId, true);
  };
  return {
    require(userId) {
      if (known.get(userId)) return RESOLVED;
      let pending = reading.get(userId);
      if (!pending) {
        pending = read(userId).finally(() => reading.delete(userId));
        reading.set(userId, pending);
      }
      return pending;
    },
  };
}

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Who may see and use a channel, for every channel and message operation.
 *
 * Visibility rule: a private channel or direct message that the caller is not
 * a member of answers NOT_FOUND, exactly like a channel that does not exist,
 * so ids cannot be probed. A public channel that the caller has not joined
 * answers PERMISSION_DENIED where membership is required.
 *
 * Posting and history check membership on every request; isMember answers
 * them from a cache that a busy sender never waits for (see below).
 */
import { LRUCache } from "lru-cache";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChannelRecord, MembershipRecord } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import type { ServiceDeps } from "../deps.js";
import { notFound, permissionDenied } from "../errors.js";

export interface ChannelAccess {
  /**
   * The channel if the caller may see it (public, or a member); NOT_FOUND
   * otherwise. Its name and topic may be stale: use it for decisions, not answers.
   */
  visible(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord; membership?: MembershipRecord }>;
  /** The channel and the caller's membership; NOT_FOUND or PERMISSION_DENIED otherwise. */
  member(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord; membership: MembershipRecord }>;
  /**
   * member() for the hot paths (posting, reading history): a positive answer
   * is reused for a while (MEMBER_CHECK_TTL_MS on a shared store). Leaving or
   * being removed through this node takes effect at once; through another
   * node within that time. The
   * membership's flags may be stale: decide with it, never answer with it.
   */
  isMember(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord }>;
  /** Drops a remembered membership (it just ended). */
  forget(channelId: bigint, userId: bigint): void;
}

/**
 * How long a positive membership check is reused by posting and reading when
 * other nodes share the store (their leaves and removals are seen this late).
 */
export const MEMBER_CHECK_TTL_MS = 3_000;
/** The same with a store only this process writes: every membership ends through forget(). */
export const SOLE_WRITER_MEMBER_CHECK_TTL_MS = 10 * 60_000;
/**
 * Fraction of the TTL after which a membership check in use is re-read in the
 * background. A sender who posts at least every (1 - REFRESH_AFTER) x TTL
 * (1.5 s on Cassandra) never waits for the store; such a pair costs the store up to
 * twice the reads of letting it expire, and only such pairs cost more at all.
 */
const REFRESH_AFTER = 0.5;

interface RememberedMember {
  channel: ChannelRecord;
  /** performance.now() when the read that found the membership began. */
  readStartedAt: number;
  refreshing: boolean;
}

export function createChannelAccess(deps: Pick<ServiceDeps, "store">, options: { memberCheckTtlMs?: number } = {}): ChannelAccess {
  const { store } = deps;
  // Authorization needs only a channel's kind, visibility and delivery mode,
  // which never change after creation, so channel records are cached for it.
  // Name and topic may be stale here: RPCs that return a channel read it fresh.
  const channels = new LRUCache<bigint, ChannelRecord>({ max: 100_000 });
  const channelOf = async (channelId: bigint) => {
    let channel = channels.get(channelId);
    if (!channel) {
      channel = await store.getChannel(channelId);
      if (channel) channels.set(channelId, channel);
    }
    return channel;
  };
  const visible: ChannelAccess["visible"] = async (caller, channelId) => {
    const [channel, membership] = await Promise.all([
      channelOf(channelId),
      store.getMembership(channelId, caller.userId),
    ]);
    if (!channel || (!membership && channel.visibility === "private")) throw notFound(`channel ${channelId}`);
    return membership ? { channel, membership } : { channel };
  };
  const member: ChannelAccess["member"] = async (caller, channelId) => {
    const { channel, membership } = await visible(caller, channelId);
    if (!membership) throw permissionDenied(`not a member of channel ${channelId}: join it first`);
    return { channel, membership };
  };
  // Every post and history read checks membership; on a remote store that is a
  // round trip per request, for an answer that rarely changes. A positive
  // answer in use is re-read in the background once REFRESH_AFTER of its life
  // has passed, so a busy sender never waits for the store (a check waited
  // behind Cassandra every 3 s per channel and sender, the tail of a stream of
  // posts); it still never outlives the TTL counted from when its read began.
  const ttlMs = options.memberCheckTtlMs ?? MEMBER_CHECK_TTL_MS;
  const refreshAfterMs = ttlMs * REFRESH_AFTER;
  const members = new LRUCache<string, RememberedMember>({ max: 200_000, ttl: ttlMs });
  const remember = (key: string, channel: ChannelRecord, readStartedAt: number) => {
    const left = ttlMs - (performance.now() - readStartedAt);
    if (left > 0) members.set(key, { channel, readStartedAt, refreshing: false }, { ttl: left });
  };
  const refresh = (key: string, known: RememberedMember, caller: UserPrincipal, channelId: bigint) => {
    known.refreshing = true;
    const startedAt = performance.now();
    member(caller, channelId).then(
      // Only if nothing forgot or replaced the entry meanwhile: a leave through
      // this node must not be undone by a read that began before it.
      ({ channel }) => members.get(key) === known && remember(key, channel, startedAt),
      (err: unknown) => {
        if (members.get(key) !== known) return;
        const code = ConnectError.from(err).code;
        // Gone: drop it now. Otherwise (store unreachable) it expires as usual.
        if (code === Code.NotFound || code === Code.PermissionDenied) members.delete(key);
        else known.refreshing = false;
      },
    );
  };
  return {
    visible,
    member,
    async isMember(caller, channelId) {
      const key = `${channelId}:${caller.userId}`;
      const known = members.get(key);
      if (known) {
        if (!known.refreshing && performance.now() - known.readStartedAt >= refreshAfterMs) refresh(key, known, caller, channelId);
        return known;
      }
      const readStartedAt = performance.now();
      const { channel } = await member(caller, channelId);
      remember(key, channel, readStartedAt);
      return { channel };
    },
    forget(channelId, userId) {
      members.delete(`${channelId}:${userId}`);
    },
  };
}


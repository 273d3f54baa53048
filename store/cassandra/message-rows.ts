/**
 * Rows of the messages table to StoredMessage, and the keys and timestamps
 * every module writing them shares. Which cell is written how (posted, LWT,
 * seq-timestamped): infra/cassandra/schema/003_conversations.cql.
 */
import { timestampOfId } from "../../core/ids.js";
import type { Mentions, ReactionSummary, StoredMessage, ThreadSummaryRecord } from "../store.js";
import type { Row } from "./cql.js";

/** A message's day bucket: its id's millisecond timestamp divided by one day. */
export const BUCKET_MS = 86_400_000;
export const bucketOf = (id: bigint): number => Math.floor(timestampOfId(id) / BUCKET_MS);

/** The primary key of message id's row, as the last three parameters of a statement. */
export const messageKey = (channelId: bigint, id: bigint): [bigint, number, bigint] => [channelId, bucketOf(id), id];
export const WHERE_MESSAGE = "WHERE channel_id = ? AND bucket = ? AND id = ?";

/**
 * The write timestamp of a message's posted cells (and its thread_replies
 * row): its creation ms in microseconds. The same record appended again
 * writes the same cells at the same timestamp, which changes nothing.
 */
export const postedTimestamp = (id: bigint): bigint => BigInt(timestampOfId(id)) * 1000n;

/**
 * A timestamp that removes posted cells for good: now, and in any case above
 * the posted timestamp (an id may be minted ahead of the clock).
 */
export function afterPosted(id: bigint): bigint {
  const now = BigInt(Date.now()) * 1000n;
  const posted = postedTimestamp(id) + 1n;
  return now > posted ? now : posted;
}

/** Mentions as the message_content UDT and the posted columns hold them. */
export function mentionsCells(m: Mentions) {
  return { mentioned_user_ids: m.userIds, mentions_channel: m.channel, mentions_here: m.here };
}

const noMentions = (): Mentions => ({ userIds: [], channel: false, here: false });

function mentionsOf(cells: { mentioned_user_ids?: bigint[] | null; mentions_channel?: boolean | null; mentions_here?: boolean | null }): Mentions {
  return { userIds: cells.mentioned_user_ids ?? [], channel: cells.mentions_channel ?? false, here: cells.mentions_here ?? false };
}

interface ContentCells {
  text: string | null;
  mentioned_user_ids: bigint[] | null;
  mentions_channel: boolean | null;
  mentions_here: boolean | null;
}

interface ReactionCells {
  emoji: string;
  count: number;
  user_ids: bigint[] | null;
}

interface ThreadCells {
  reply_count: number;
  latest_reply_id: bigint;
  recent_replier_ids: bigint[] | null;
}

export const reactionsCell = (list: readonly ReactionSummary[]): ReactionCells[] | null =>
  list.length === 0 ? null : list.map((r) => ({ emoji: r.emoji, count: r.count, user_ids: r.userIds }));

export const threadCell = (t: ThreadSummaryRecord | undefined): ThreadCells | null =>
  t === undefined ? null : { reply_count: t.replyCount, latest_reply_id: t.latestReplyId, recent_replier_ids: t.recentReplierIds };

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

/** A message as it is now; a deleted one keeps no text, mentions, reactions or pin, whatever cells a race left behind. */
export function toStoredMessage(r: Row): StoredMessage {
  const deletedAt = num(r.get("deleted_at"));
  const edited = r.get("edited") as ContentCells | null;
  const content = edited ?? {
    text: r.get("text") as string | null,
    mentioned_user_ids: r.get("mentioned_user_ids") as bigint[] | null,
    mentions_channel: r.get("mentions_channel") as boolean | null,
    mentions_here: r.get("mentions_here") as boolean | null,
  };
  const thread = r.get("thread") as ThreadCells | null;
  const live = deletedAt === 0;
  return {
    id: r.get("id") as bigint,
    channelId: r.get("channel_id") as bigint,
    senderId: r.get("sender_id") as bigint,
    text: live ? (content.text ?? "") : "",
    clientMsgId: (r.get("client_msg_id") as string | null) ?? "",
    threadRootId: (r.get("thread_root_id") as bigint | null) ?? 0n,
    alsoToChannel: (r.get("also_to_channel") as boolean | null) ?? false,
    mentions: live ? mentionsOf(content) : noMentions(),
    editedAt: num(r.get("edited_at")),
    deletedAt,
    thread:
      thread && thread.reply_count > 0
        ? { replyCount: thread.reply_count, latestReplyId: thread.latest_reply_id, recentReplierIds: thread.recent_replier_ids ?? [] }
        : undefined,
    reactions: live
      ? ((r.get("reactions") as ReactionCells[] | null) ?? []).map((x) => ({ emoji: x.emoji, count: x.count, userIds: x.user_ids ?? [] }))
      : [],
    pinnedAt: live ? num(r.get("pinned_at")) : 0,
    pinnedBy: live ? ((r.get("pinned_by") as bigint | null) ?? 0n) : 0n,
  };
}

/** Listed in the channel's history: not a reply (or one sent also to the channel), and not deleted (or a root that still has replies). */
export const inHistory = (m: StoredMessage): boolean =>
  (m.threadRootId === 0n || m.alsoToChannel) && (m.deletedAt === 0 || m.thread !== undefined);

/** The pin-state version a pin LWT conditions on; null until the first pin. */
export const pinVersionOf = (r: Row): number | null => (r.get("pin_version") as number | null) ?? null;

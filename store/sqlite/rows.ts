/** SQLite rows to store records and back: the one mapping between the embedded schema and store/store.ts. */
import {
  NO_MENTIONS,
  type ChangeRecord,
  type ChannelRecord,
  type MembershipRecord,
  type Mentions,
  type ReactionSummary,
  type StoredMessage,
  type UserRecord,
} from "../store.js";

export type Row = Record<string, unknown>;

const bool = (v: unknown): boolean => v === 1n || v === 1;
const num = (v: unknown): number => Number(v);

export function toUser(r: Row): UserRecord {
  return { id: r.id as bigint, name: r.name as string, email: r.email as string, createdAt: num(r.created_at) };
}

export function toChannel(r: Row): ChannelRecord {
  const directKey = r.direct_key as string | null;
  return {
    id: r.id as bigint,
    kind: r.kind as ChannelRecord["kind"],
    name: r.name as string,
    visibility: r.visibility as ChannelRecord["visibility"],
    delivery: r.delivery as ChannelRecord["delivery"],
    topic: r.topic as string,
    createdBy: r.created_by as bigint,
    createdAt: num(r.created_at),
    directUserIds: directKey ? directKey.split(":").map((s) => BigInt(s)) : [],
  };
}

export function toMembership(r: Row, prefix = ""): MembershipRecord {
  return {
    channelId: r[`${prefix}channel_id`] as bigint,
    userId: r[`${prefix}user_id`] as bigint,
    role: r[`${prefix}role`] as MembershipRecord["role"],
    isStar: bool(r[`${prefix}is_star`]),
    isFavorite: bool(r[`${prefix}is_favorite`]),
    mute: bool(r[`${prefix}mute`]),
    preferences: JSON.parse(r[`${prefix}preferences`] as string) as Record<string, string>,
    joinedAt: num(r[`${prefix}joined_at`]),
  };
}

/** A comma-separated list of ids (or seqs), as the schema keeps them in one column, and back. */
export const idsOf = (text: string): bigint[] => (text === "" ? [] : text.split(",").map((s) => BigInt(s)));
export const idList = (list: readonly bigint[]): string => list.join(",");

export function mentionsColumn(m: Mentions): string | null {
  if (m.userIds.length === 0 && !m.channel && !m.here) return null;
  return JSON.stringify({ u: m.userIds.map(String), c: m.channel, h: m.here });
}

function mentionsOf(column: unknown): Mentions {
  if (column == null) return NO_MENTIONS;
  const j = JSON.parse(column as string) as { u: string[]; c: boolean; h: boolean };
  return { userIds: j.u.map((s) => BigInt(s)), channel: j.c, here: j.h };
}

export function reactionsColumn(list: readonly ReactionSummary[]): string | null {
  if (list.length === 0) return null;
  return JSON.stringify(list.map((r) => ({ e: r.emoji, n: r.count, u: r.userIds.map(String) })));
}

function reactionsOf(column: unknown): ReactionSummary[] {
  if (column == null) return [];
  return (JSON.parse(column as string) as Array<{ e: string; n: number; u: string[] }>).map((r) => ({
    emoji: r.e,
    count: r.n,
    userIds: r.u.map((s) => BigInt(s)),
  }));
}

export function toStoredMessage(r: Row): StoredMessage {
  const replyCount = num(r.reply_count);
  return {
    id: r.id as bigint,
    channelId: r.channel_id as bigint,
    senderId: r.sender_id as bigint,
    text: r.text as string,
    clientMsgId: (r.client_msg_id as string | null) ?? "",
    threadRootId: r.thread_root_id as bigint,
    alsoToChannel: bool(r.also_to_channel),
    mentions: mentionsOf(r.mentions),
    editedAt: num(r.edited_at),
    deletedAt: num(r.deleted_at),
    thread:
      replyCount > 0
        ? { replyCount, latestReplyId: r.latest_reply_id as bigint, recentReplierIds: idsOf(r.recent_repliers as string) }
        : undefined,
    reactions: reactionsOf(r.reactions),
    pinnedAt: num(r.pinned_at),
    pinnedBy: r.pinned_by as bigint,
  };
}

export function toChange(r: Row): ChangeRecord {
  return {
    channelId: r.channel_id as bigint,
    seq: r.seq as bigint,
    kind: r.kind as ChangeRecord["kind"],
    messageId: r.message_id as bigint,
    actorId: r.actor_id as bigint,
    emoji: r.emoji as string,
    at: num(r.at),
  };
}

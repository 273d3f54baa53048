/**
 * Reactions: one row per (message, emoji, user), the same rows by user, and
 * the message's summary recomputed from its rows. Why the counts are exact
 * under concurrent calls from any node (seq-timestamped cells):
 * infra/cassandra/schema/003_conversations.cql.
 */
import { REACTION_SAMPLE_USERS, type ReactionChange, type ReactionSummary } from "../store.js";
import { seqTimestamp } from "./change-log.js";
import type { Cql } from "./cql.js";
import { messageKey, reactionsCell, WHERE_MESSAGE } from "./message-rows.js";

interface ReactionRow {
  emoji: string;
  userId: bigint;
  at: bigint;
  /** Write time in microseconds: orders emoji first used in the same ms. */
  written: bigint;
}

const compare = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/** Emoji in the order of their earliest row; users by when they reacted, then id; REACTION_SAMPLE_USERS of them. */
export function summarise(rows: readonly ReactionRow[]): ReactionSummary[] {
  const byEmoji = new Map<string, ReactionRow[]>();
  for (const r of rows) {
    const list = byEmoji.get(r.emoji);
    if (list) list.push(r);
    else byEmoji.set(r.emoji, [r]);
  }
  const first = (list: ReactionRow[]) => list.reduce((a, b) => (compare(b.at, a.at) < 0 || (b.at === a.at && b.written < a.written) ? b : a));
  return [...byEmoji.values()]
    .map((list) => ({ list, first: first(list) }))
    .sort((a, b) => compare(a.first.at, b.first.at) || compare(a.first.written, b.first.written))
    .map(({ list }) => ({
      emoji: list[0]!.emoji,
      count: list.length,
      userIds: list
        .sort((a, b) => compare(a.at, b.at) || compare(a.userId, b.userId))
        .slice(0, REACTION_SAMPLE_USERS)
        .map((r) => r.userId),
    }));
}

export class Reactions {
  constructor(private readonly cql: Cql) {}

  async has(r: ReactionChange): Promise<boolean> {
    const rows = await this.cql.q("SELECT at FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?", [
      r.channelId,
      r.messageId,
      r.emoji,
      r.userId,
    ]);
    return rows.rowLength > 0;
  }

  /**
   * Plain upserts: the same (user, emoji) sent twice is one row. Two calls
   * racing for the same new reaction may both find it missing and both log
   * "reaction_added"; the count stays exact, and an entry only names what
   * changed, so a replayer re-reads the message either way.
   */
  async add(r: ReactionChange): Promise<void> {
    await Promise.all([
      this.cql.q("INSERT INTO {ks}.reactions (channel_id, message_id, emoji, user_id, at) VALUES (?, ?, ?, ?, ?)", [
        r.channelId,
        r.messageId,
        r.emoji,
        r.userId,
        BigInt(r.at),
      ]),
      this.cql.q("INSERT INTO {ks}.reactions_by_user (channel_id, user_id, message_id, emoji) VALUES (?, ?, ?, ?)", [
        r.channelId,
        r.userId,
        r.messageId,
        r.emoji,
      ]),
    ]);
  }

  async remove(r: ReactionChange): Promise<void> {
    await Promise.all([
      this.cql.q("DELETE FROM {ks}.reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?", [
        r.channelId,
        r.messageId,
        r.emoji,
        r.userId,
      ]),
      this.cql.q("DELETE FROM {ks}.reactions_by_user WHERE channel_id = ? AND user_id = ? AND message_id = ? AND emoji = ?", [
        r.channelId,
        r.userId,
        r.messageId,
        r.emoji,
      ]),
    ]);
  }

  /**
   * Recomputes the message's summary from its rows and writes it at the
   * timestamp of seq, the entry of the change just logged. Reads the whole
   * partition: one row per reaction, a few dozen bytes each.
   */
  async summarise(channelId: bigint, messageId: bigint, seq: bigint): Promise<ReactionSummary[]> {
    const rows = await this.cql.qAll(
      "SELECT emoji, user_id, at, WRITETIME(at) AS written FROM {ks}.reactions WHERE channel_id = ? AND message_id = ?",
      [channelId, messageId],
    );
    const summary = summarise(
      rows.map((r) => ({
        emoji: r.get("emoji") as string,
        userId: r.get("user_id") as bigint,
        at: r.get("at") as bigint,
        written: r.get("written") as bigint,
      })),
    );
    await this.cql.q(`UPDATE {ks}.messages USING TIMESTAMP ? SET reactions = ? ${WHERE_MESSAGE}`, [
      seqTimestamp(seq),
      reactionsCell(summary),
      ...messageKey(channelId, messageId),
    ]);
    return summary;
  }

  /**
   * Drops a deleted message's reactions. A reaction racing the delete may
   * write its row after this: readers never show a deleted message's
   * reactions, and only reactionsOfUser could still list that one row.
   */
  async dropAll(channelId: bigint, messageId: bigint): Promise<void> {
    const rows = await this.cql.qAll("SELECT emoji, user_id FROM {ks}.reactions WHERE channel_id = ? AND message_id = ?", [channelId, messageId]);
    await Promise.all([
      this.cql.q("DELETE FROM {ks}.reactions WHERE channel_id = ? AND message_id = ?", [channelId, messageId]),
      ...rows.map((r) =>
        this.cql.q("DELETE FROM {ks}.reactions_by_user WHERE channel_id = ? AND user_id = ? AND message_id = ? AND emoji = ?", [
          channelId,
          r.get("user_id"),
          messageId,
          r.get("emoji"),
        ]),
      ),
    ]);
  }

  async ofUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Promise<Array<{ messageId: bigint; emoji: string }>> {
    const rows = await this.cql.q(
      "SELECT message_id, emoji FROM {ks}.reactions_by_user WHERE channel_id = ? AND user_id = ? AND message_id >= ? AND message_id <= ?",
      [channelId, userId, fromId, toId],
    );
    return rows.rows.map((r) => ({ messageId: r.get("message_id") as bigint, emoji: r.get("emoji") as string }));
  }
}

/**
 * Threads: the thread_replies index of a root's replies that are not
 * deleted, and the root's summary recomputed from it. Why the summary is
 * exact under concurrent replies from any node (seq-timestamped cells):
 * infra/cassandra/schema/003_conversations.cql.
 */
import { MAX_RECENT_REPLIERS, type MessageRange, type ThreadSummaryRecord } from "../store.js";
import { seqTimestamp } from "./change-log.js";
import type { Cql } from "./cql.js";
import { afterPosted, messageKey, postedTimestamp, threadCell, WHERE_MESSAGE } from "./message-rows.js";

/** Replies read per page while looking for the most recent repliers. */
const REPLIER_PAGE = 50;
const MAX_ID = (1n << 63n) - 1n;

export class Threads {
  constructor(private readonly cql: Cql) {}

  addReply(channelId: bigint, rootId: bigint, id: bigint, senderId: bigint) {
    return this.cql.qSoon("INSERT INTO {ks}.thread_replies (channel_id, root_id, id, sender_id) VALUES (?, ?, ?, ?) USING TIMESTAMP ?", [
      channelId,
      rootId,
      id,
      senderId,
      postedTimestamp(id),
    ]);
  }

  removeReply(channelId: bigint, rootId: bigint, id: bigint) {
    return this.cql.q("DELETE FROM {ks}.thread_replies USING TIMESTAMP ? WHERE channel_id = ? AND root_id = ? AND id = ?", [
      afterPosted(id),
      channelId,
      rootId,
      id,
    ]);
  }

  /**
   * Recomputes the root's summary and writes it at the timestamp of seq, the
   * "thread_updated" entry of the change that altered the replies (called
   * after that entry is logged). Returns the summary.
   */
  async summarise(channelId: bigint, rootId: bigint, seq: bigint): Promise<ThreadSummaryRecord | undefined> {
    const [count, recent] = await Promise.all([
      this.cql.q("SELECT count(*) AS n FROM {ks}.thread_replies WHERE channel_id = ? AND root_id = ?", [channelId, rootId]),
      this.recentReplies(channelId, rootId),
    ]);
    const replyCount = Number(count.first().get("n"));
    const thread =
      replyCount > 0 && recent.latestReplyId !== 0n
        ? { replyCount, latestReplyId: recent.latestReplyId, recentReplierIds: recent.replierIds }
        : undefined;
    await this.cql.q(`UPDATE {ks}.messages USING TIMESTAMP ? SET thread = ? ${WHERE_MESSAGE}`, [
      seqTimestamp(seq),
      threadCell(thread),
      ...messageKey(channelId, rootId),
    ]);
    return thread;
  }

  /** The newest reply and up to MAX_RECENT_REPLIERS senders, most recent first, paging only as far as needed. */
  private async recentReplies(channelId: bigint, rootId: bigint): Promise<{ latestReplyId: bigint; replierIds: bigint[] }> {
    const replierIds: bigint[] = [];
    let latestReplyId = 0n;
    for (let before = MAX_ID; ; ) {
      const rows = (
        await this.cql.q("SELECT id, sender_id FROM {ks}.thread_replies WHERE channel_id = ? AND root_id = ? AND id < ? LIMIT ?", [
          channelId,
          rootId,
          before,
          REPLIER_PAGE,
        ])
      ).rows;
      for (const r of rows) {
        if (latestReplyId === 0n) latestReplyId = r.get("id") as bigint;
        const sender = r.get("sender_id") as bigint;
        if (!replierIds.includes(sender)) replierIds.push(sender);
        if (replierIds.length === MAX_RECENT_REPLIERS) return { latestReplyId, replierIds };
      }
      if (rows.length < REPLIER_PAGE) return { latestReplyId, replierIds };
      before = rows.at(-1)!.get("id") as bigint;
    }
  }

  /** Ids of the root's replies in range (deleted ones are gone from the index). */
  async replyIds(channelId: bigint, rootId: bigint, range: MessageRange, limit: number): Promise<bigint[]> {
    const rows = (
      await this.cql.q(
        `SELECT id FROM {ks}.thread_replies WHERE channel_id = ? AND root_id = ? AND id < ? AND id > ?${
          range.order === "newest-first" ? "" : " ORDER BY id ASC"
        } LIMIT ?`,
        [channelId, rootId, range.before ?? MAX_ID, range.after ?? -1n, limit],
      )
    ).rows;
    return rows.map((r) => r.get("id") as bigint);
  }
}

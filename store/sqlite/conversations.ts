/**
 * Messages that change, on SQLite: the change log, thread summaries, edits,
 * deletes, reactions and pins. Every method here runs inside a transaction
 * its caller (sqlite-store.ts) opens as IMMEDIATE, so a change, its effects
 * on other rows and its log entry commit together, and the log's seq order
 * is the commit order, whichever connection commits.
 */
import type Database from "better-sqlite3";
import { timestampOfId } from "../../core/ids.js";
import {
  LimitExceededError,
  MAX_RECENT_REPLIERS,
  newStoredMessage,
  NO_MENTIONS,
  NotFoundError,
  REACTION_SAMPLE_USERS,
  type ChangeKind,
  type ChangeRecord,
  type MessageChange,
  type MessageEdit,
  type MessageRecord,
  type ReactionChange,
  type ReactionSummary,
  type StoredMessage,
} from "../store.js";
import { idList, idsOf, mentionsColumn, reactionsColumn, toChange, toStoredMessage, type Row } from "./rows.js";

/** Thrown inside an append's savepoint when its message is stored already, to undo the seqs it took. */
const WRITTEN_BEFORE = Symbol("written before");

export type AppendOutcome =
  | { message: StoredMessage; duplicate: boolean; changes: ChangeRecord[]; root?: StoredMessage }
  | { error: unknown };

export class SqliteConversations {
  private readonly s;
  /** A savepoint inside the group commit's transaction: a failed append leaves nothing behind. */
  private readonly appendInSavepoint: (m: MessageRecord) => AppendOutcome;

  constructor(db: Database.Database) {
    this.appendInSavepoint = db.transaction((m: MessageRecord) => this.appendOrThrow(m));
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      // The caller's IMMEDIATE transaction keeps other writers out between this read and the entry's insert.
      nextSeq: p("SELECT coalesce(max(seq), 0) + 1 AS seq FROM changes WHERE channel_id = ?"),
      bumpRevision: p(
        `INSERT INTO channel_revisions (channel_id, history_rev) VALUES (?, ?)
         ON CONFLICT (channel_id) DO UPDATE SET history_rev = excluded.history_rev`,
      ),
      revision: p("SELECT history_rev FROM channel_revisions WHERE channel_id = ?"),
      insertChange: p("INSERT INTO changes (channel_id, seq, kind, message_id, actor_id, emoji, at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      changesAfter: p("SELECT * FROM changes WHERE channel_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
      changeAt: p("SELECT * FROM changes WHERE channel_id = ? AND seq = ?"),
      insertMessage: p(
        // Any conflict: the same key from the same sender, or the same id written again.
        `INSERT INTO messages (channel_id, id, sender_id, text, client_msg_id, thread_root_id, also_to_channel, mentions, in_history, post_seqs)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      getMessage: p("SELECT * FROM messages WHERE channel_id = ? AND id = ?"),
      findByClientMsgId: p("SELECT * FROM messages WHERE channel_id = ? AND sender_id = ? AND client_msg_id = ?"),
      setThread: p(
        "UPDATE messages SET reply_count = ?, latest_reply_id = ?, recent_repliers = ?, in_history = ? WHERE channel_id = ? AND id = ?",
      ),
      liveReplies: p(
        "SELECT id, sender_id FROM messages INDEXED BY messages_thread WHERE channel_id = ? AND thread_root_id = ? AND thread_root_id != 0 AND deleted_at = 0 ORDER BY id DESC",
      ),
      edit: p("UPDATE messages SET text = ?, mentions = ?, edited_at = ? WHERE channel_id = ? AND id = ?"),
      delete: p(
        `UPDATE messages SET text = '', mentions = NULL, reactions = NULL, pinned_at = 0, pinned_by = 0, deleted_at = ?, in_history = ?
         WHERE channel_id = ? AND id = ?`,
      ),
      deleteReactions: p("DELETE FROM reactions WHERE channel_id = ? AND message_id = ?"),
      hasReaction: p("SELECT 1 FROM reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?"),
      insertReaction: p("INSERT INTO reactions (channel_id, message_id, emoji, user_id, at) VALUES (?, ?, ?, ?, ?)"),
      deleteReaction: p("DELETE FROM reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? AND user_id = ?"),
      emojiCount: p("SELECT count(*) AS n FROM reactions WHERE channel_id = ? AND message_id = ? AND emoji = ?"),
      emojiSample: p(
        `SELECT user_id FROM reactions WHERE channel_id = ? AND message_id = ? AND emoji = ? ORDER BY at, user_id LIMIT ${REACTION_SAMPLE_USERS}`,
      ),
      setReactions: p("UPDATE messages SET reactions = ? WHERE channel_id = ? AND id = ?"),
      reactionsOfUser: p(
        "SELECT message_id, emoji FROM reactions WHERE channel_id = ? AND user_id = ? AND message_id >= ? AND message_id <= ? ORDER BY message_id, at",
      ),
      setPin: p("UPDATE messages SET pinned_at = ?, pinned_by = ? WHERE channel_id = ? AND id = ?"),
      pinCount: p("SELECT count(*) AS n FROM messages WHERE channel_id = ? AND pinned_at != 0"),
      pins: p("SELECT * FROM messages WHERE channel_id = ? AND pinned_at != 0 ORDER BY pinned_at DESC, id DESC"),
    };
  }

  // --- the change log ---

  private log(channelId: bigint, kind: ChangeKind, messageId: bigint, actorId: bigint, emoji: string, at: number): ChangeRecord {
    return this.logAt(this.takeSeq(channelId), channelId, kind, messageId, actorId, emoji, at);
  }

  /**
   * Within one group commit, the last seq logged per channel: its appends
   * need not read the log's end again (nobody else writes during the
   * IMMEDIATE transaction). Undefined outside a group commit.
   */
  private batchHeads: Map<bigint, bigint> | undefined;

  /** Runs one group commit's appends, reading each channel's log end once. */
  inGroupCommit<T>(appends: () => T): T {
    this.batchHeads = new Map();
    try {
      return appends();
    } finally {
      this.batchHeads = undefined;
    }
  }

  /** The next seq, until an entry is logged with it (two takes without a log between give the same). */
  private takeSeq(channelId: bigint): bigint {
    const head = this.batchHeads?.get(channelId);
    if (head !== undefined) return head + 1n;
    return (this.s.nextSeq.get(channelId) as Row).seq as bigint;
  }

  private logAt(seq: bigint, channelId: bigint, kind: ChangeKind, messageId: bigint, actorId: bigint, emoji: string, at: number): ChangeRecord {
    this.s.insertChange.run(channelId, seq, kind, messageId, actorId, emoji, at);
    this.batchHeads?.set(channelId, seq);
    if (kind !== "posted") this.s.bumpRevision.run(channelId, seq);
    return { channelId, seq, kind, messageId, actorId, emoji, at };
  }

  listChanges(channelId: bigint, afterSeq: bigint, limit: number): ChangeRecord[] {
    return (this.s.changesAfter.all(channelId, afterSeq, limit) as Row[]).map(toChange);
  }

  historyRevision(channelId: bigint): bigint {
    const row = this.s.revision.get(channelId) as Row | undefined;
    return (row?.history_rev as bigint | undefined) ?? 0n;
  }

  // --- reads ---

  get(channelId: bigint, id: bigint): StoredMessage | undefined {
    const row = this.s.getMessage.get(channelId, id) as Row | undefined;
    return row && toStoredMessage(row);
  }

  private live(channelId: bigint, id: bigint): StoredMessage {
    const m = this.get(channelId, id);
    if (!m || m.deletedAt !== 0) throw new NotFoundError("message");
    return m;
  }

  findByClientMsgId(channelId: bigint, senderId: bigint, clientMsgId: string): StoredMessage | undefined {
    const row = this.s.findByClientMsgId.get(channelId, senderId, clientMsgId) as Row | undefined;
    return row && toStoredMessage(row);
  }

  reactionsOfUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Array<{ messageId: bigint; emoji: string }> {
    return (this.s.reactionsOfUser.all(channelId, userId, fromId, toId) as Row[]).map((r) => ({
      messageId: r.message_id as bigint,
      emoji: r.emoji as string,
    }));
  }

  pins(channelId: bigint): StoredMessage[] {
    return (this.s.pins.all(channelId) as Row[]).map(toStoredMessage);
  }

  // --- posting ---

  /** One append of a group commit; failures are returned, so that one bad record does not fail its batch. */
  append(m: MessageRecord): AppendOutcome {
    try {
      // A plain post writes nothing before its one insert that could need undoing; a reply writes its root too.
      return (m.threadRootId ?? 0n) === 0n ? this.appendOrThrow(m) : this.appendInSavepoint(m);
    } catch (error) {
      // A rolled-back savepoint took its log entries with it: read the log's end again.
      this.batchHeads?.delete(m.channelId);
      if (error !== WRITTEN_BEFORE) return { error };
    }
    try {
      return this.earlierAppend(m);
    } catch (error) {
      return { error };
    }
  }

  /**
   * The seqs are read before the row is written, so that the row carries
   * them (post_seqs) in its one insert; when the insert finds the message
   * there already, WRITTEN_BEFORE ends the append before anything was
   * written (for a reply, it rolls its savepoint back).
   */
  private appendOrThrow(m: MessageRecord): AppendOutcome {
    const rootId = m.threadRootId ?? 0n;
    const alsoToChannel = rootId !== 0n && (m.alsoToChannel ?? false);
    let root: StoredMessage | undefined;
    if (rootId !== 0n) {
      root = this.get(m.channelId, rootId);
      if (!root || root.threadRootId !== 0n) throw new NotFoundError("thread_root_id");
    }
    const posted = this.takeSeq(m.channelId);
    const threadUpdated = root ? posted + 1n : undefined;
    const mentions = m.mentions ?? NO_MENTIONS;
    const info = this.s.insertMessage.run(
      m.channelId,
      m.id,
      m.senderId,
      m.text,
      m.clientMsgId === "" ? null : m.clientMsgId,
      rootId,
      alsoToChannel ? 1 : 0,
      mentionsColumn(mentions),
      rootId === 0n || alsoToChannel ? 1 : 0,
      threadUpdated === undefined ? String(posted) : `${posted},${threadUpdated}`,
    );
    if (info.changes === 0) throw WRITTEN_BEFORE;
    const at = timestampOfId(m.id);
    const changes = [this.logAt(posted, m.channelId, "posted", m.id, m.senderId, "", at)];
    if (root && threadUpdated !== undefined) {
      root = this.summarise(root);
      changes.push(this.logAt(threadUpdated, m.channelId, "thread_updated", root.id, m.senderId, "", at));
    }
    const message: StoredMessage = { ...newStoredMessage(m), threadRootId: rootId, alsoToChannel, mentions };
    return { message, duplicate: false, changes, ...(root && { root }) };
  }

  /** The message is there: this same record written before (a redelivered write-behind record), or another with its key. */
  private earlierAppend(m: MessageRecord): AppendOutcome {
    const same = this.s.getMessage.get(m.channelId, m.id) as Row | undefined;
    if (same) {
      // Done before: answered with what it logged then.
      const changes = idsOf(same.post_seqs as string).map((seq) => toChange(this.s.changeAt.get(m.channelId, seq) as Row));
      const first = toStoredMessage(same);
      const root = first.threadRootId !== 0n ? this.get(m.channelId, first.threadRootId) : undefined;
      return { message: first, duplicate: false, changes, ...(root && { root }) };
    }
    const original = this.s.findByClientMsgId.get(m.channelId, m.senderId, m.clientMsgId) as Row;
    return { message: toStoredMessage(original), duplicate: true, changes: [] };
  }

  /** Recomputes a root's thread summary from its replies that are not deleted; returns the root now. */
  private summarise(root: StoredMessage): StoredMessage {
    const replies = this.s.liveReplies.all(root.channelId, root.id) as Row[];
    const recent: bigint[] = [];
    for (const r of replies) {
      const sender = r.sender_id as bigint;
      if (!recent.includes(sender)) recent.push(sender);
      if (recent.length === MAX_RECENT_REPLIERS) break;
    }
    const latest = (replies[0]?.id as bigint | undefined) ?? 0n;
    const inHistory = root.deletedAt === 0 || replies.length > 0;
    this.s.setThread.run(replies.length, latest, idList(recent), inHistory ? 1 : 0, root.channelId, root.id);
    return this.get(root.channelId, root.id)!;
  }

  // --- changes to a message ---

  edit(e: MessageEdit): MessageChange {
    const current = this.live(e.channelId, e.id);
    if (current.senderId !== e.senderId) throw new NotFoundError("message");
    this.s.edit.run(e.text, mentionsColumn(e.mentions), e.at, e.channelId, e.id);
    const change = this.log(e.channelId, "edited", e.id, e.senderId, "", e.at);
    return { message: this.get(e.channelId, e.id)!, changes: [change] };
  }

  delete(channelId: bigint, id: bigint, actorId: bigint, at: number): MessageChange {
    const current = this.live(channelId, id);
    const changes: ChangeRecord[] = [];
    if (current.pinnedAt !== 0) changes.push(this.log(channelId, "unpinned", id, actorId, "", at));
    // A root keeps its place in history while it has replies (a tombstone).
    const isRootWithReplies = current.threadRootId === 0n && current.thread !== undefined;
    this.s.delete.run(at, isRootWithReplies ? 1 : 0, channelId, id);
    this.s.deleteReactions.run(channelId, id);
    changes.push(this.log(channelId, "deleted", id, actorId, "", at));
    if (current.threadRootId !== 0n) {
      const root = this.get(channelId, current.threadRootId);
      if (root) {
        this.summarise(root);
        changes.push(this.log(channelId, "thread_updated", root.id, actorId, "", at));
      }
    }
    return { message: this.get(channelId, id)!, changes };
  }

  addReaction(r: ReactionChange, maxEmoji: number): MessageChange {
    const current = this.live(r.channelId, r.messageId);
    if (this.s.hasReaction.get(r.channelId, r.messageId, r.emoji, r.userId)) return { message: current, changes: [] };
    if (!current.reactions.some((x) => x.emoji === r.emoji) && current.reactions.length >= maxEmoji) {
      throw new LimitExceededError("reactions", maxEmoji);
    }
    this.s.insertReaction.run(r.channelId, r.messageId, r.emoji, r.userId, r.at);
    return this.reactionChanged(current, r, "reaction_added");
  }

  removeReaction(r: ReactionChange): MessageChange {
    const current = this.live(r.channelId, r.messageId);
    if (this.s.deleteReaction.run(r.channelId, r.messageId, r.emoji, r.userId).changes === 0) return { message: current, changes: [] };
    return this.reactionChanged(current, r, "reaction_removed");
  }

  /** Brings the message's summary up to date for one emoji (exact: counted in the same transaction). */
  private reactionChanged(current: StoredMessage, r: ReactionChange, kind: "reaction_added" | "reaction_removed"): MessageChange {
    const count = Number((this.s.emojiCount.get(r.channelId, r.messageId, r.emoji) as Row).n);
    const userIds = (this.s.emojiSample.all(r.channelId, r.messageId, r.emoji) as Row[]).map((x) => x.user_id as bigint);
    // The entries are replaced, never changed in place: a shallow copy will do.
    const summary: ReactionSummary[] = [...current.reactions];
    const i = summary.findIndex((x) => x.emoji === r.emoji);
    if (count === 0) summary.splice(i, 1);
    else if (i === -1) summary.push({ emoji: r.emoji, count, userIds });
    else summary[i] = { emoji: r.emoji, count, userIds };
    this.s.setReactions.run(reactionsColumn(summary), r.channelId, r.messageId);
    const change = this.log(r.channelId, kind, r.messageId, r.userId, r.emoji, r.at);
    return { message: this.get(r.channelId, r.messageId)!, changes: [change] };
  }

  pin(channelId: bigint, id: bigint, actorId: bigint, at: number, maxPins: number): MessageChange {
    const current = this.live(channelId, id);
    if (current.pinnedAt !== 0) return { message: current, changes: [] };
    if (Number((this.s.pinCount.get(channelId) as Row).n) >= maxPins) throw new LimitExceededError("pins", maxPins);
    this.s.setPin.run(at, actorId, channelId, id);
    const change = this.log(channelId, "pinned", id, actorId, "", at);
    return { message: this.get(channelId, id)!, changes: [change] };
  }

  unpin(channelId: bigint, id: bigint, actorId: bigint, at: number): MessageChange {
    const current = this.live(channelId, id);
    if (current.pinnedAt === 0) return { message: current, changes: [] };
    this.s.setPin.run(0, 0n, channelId, id);
    const change = this.log(channelId, "unpinned", id, actorId, "", at);
    return { message: this.get(channelId, id)!, changes: [change] };
  }
}

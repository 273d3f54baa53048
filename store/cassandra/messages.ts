/**
 * Messages on Cassandra: posting, reading, and the changes to a message
 * (edits, deletes, pins, reactions), each logged in the channel's change
 * log. Every operation writes the message state first, then appends its
 * log entries, then answers: a reader that sees an entry finds the state it
 * describes, or newer. The cells and why each is written as it is:
 * infra/cassandra/schema/003_conversations.cql.
 */
import cassandra from "cassandra-driver";
import { LRUCache } from "lru-cache";
import { timestampOfId } from "../../core/ids.js";
import {
  LimitExceededError,
  newStoredMessage,
  NotFoundError,
  StoreUnavailableError,
  type AppendResult,
  type ChangeKind,
  type MessageChange,
  type MessageEdit,
  type MessageRange,
  type MessageRecord,
  type ReactionChange,
  type StoredMessage,
} from "../store.js";
import type { ChangeLog, LogSlot, NewChange } from "./change-log.js";
import type { Cql, Row } from "./cql.js";
import {
  afterPosted,
  bucketOf,
  inHistory,
  mentionsCells,
  messageKey,
  pinVersionOf,
  postedTimestamp,
  toStoredMessage,
  WHERE_MESSAGE,
} from "./message-rows.js";
import { Reactions } from "./reactions.js";
import { Threads } from "./threads.js";

const { unset } = cassandra.types;
const MAX_ID = (1n << 63n) - 1n;
/** Tries of a pin-state LWT that lost to another change of the same message's pin. */
const PIN_ATTEMPTS = 10;

/** Rows a history page reads beyond what it still needs, for the ones history leaves out (replies, deleted messages). */
const historySlack = (want: number) => Math.ceil(want / 4) + 2;

export class Messages {
  // A channel's bucket row is written by its first message of the day; the
  // rest of that day's messages need only their own write. The write in
  // flight is shared, so a burst on a new day sends one, not one per post.
  private readonly knownBuckets = new LRUCache<string, Promise<unknown>>({ max: 200_000 });
  private readonly threads: Threads;
  private readonly reactions: Reactions;

  constructor(
    private readonly cql: Cql,
    private readonly log: ChangeLog,
  ) {
    this.threads = new Threads(cql);
    this.reactions = new Reactions(cql);
  }

  // --- reads ---

  private async row(channelId: bigint, id: bigint): Promise<Row | undefined> {
    return (await this.cql.q(`SELECT * FROM {ks}.messages ${WHERE_MESSAGE}`, messageKey(channelId, id))).first() ?? undefined;
  }

  async get(channelId: bigint, id: bigint): Promise<StoredMessage | undefined> {
    const row = await this.row(channelId, id);
    return row && toStoredMessage(row);
  }

  /** A message that is not deleted, with the pin version its pin-state LWTs condition on; NotFoundError("message") otherwise. */
  private async live(channelId: bigint, id: bigint): Promise<{ message: StoredMessage; pinVersion: number | null }> {
    const row = await this.row(channelId, id);
    const message = row && toStoredMessage(row);
    if (!row || !message || message.deletedAt !== 0) throw new NotFoundError("message");
    return { message, pinVersion: pinVersionOf(row) };
  }

  /** One IN query per day bucket the ids fall in, in parallel. */
  async getMany(channelId: bigint, ids: readonly bigint[]): Promise<StoredMessage[]> {
    const byBucket = new Map<number, bigint[]>();
    for (const id of new Set(ids)) {
      const bucket = bucketOf(id);
      const list = byBucket.get(bucket);
      if (list) list.push(id);
      else byBucket.set(bucket, [id]);
    }
    const found = new Map<bigint, StoredMessage>();
    await Promise.all(
      [...byBucket].map(async ([bucket, list]) => {
        const rows = await this.cql.q("SELECT * FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND id IN ?", [channelId, bucket, list]);
        for (const r of rows.rows) found.set(r.get("id") as bigint, toStoredMessage(r));
      }),
    );
    return ids.flatMap((id) => found.get(id) ?? []);
  }

  async findByClientMsgId(channelId: bigint, senderId: bigint, clientMsgId: string): Promise<StoredMessage | undefined> {
    const key = (
      await this.cql.q("SELECT message_id FROM {ks}.message_keys WHERE channel_id = ? AND sender_id = ? AND client_msg_id = ?", [
        channelId,
        senderId,
        clientMsgId,
      ])
    ).first();
    return key ? this.get(channelId, key.get("message_id") as bigint) : undefined;
  }

  /**
   * History, bucket by bucket as the buckets hold messages. Within a bucket,
   * reads a little more than the page still needs and leaves out what
   * history does not list, reading on until the page is full or the bucket
   * ends: a page of 50 in a channel with few replies is one query.
   */
  async list(channelId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    if (range.limit <= 0) return [];
    const newestFirst = range.order === "newest-first";
    const bucketRows = newestFirst
      ? await this.cql.q("SELECT bucket FROM {ks}.message_buckets WHERE channel_id = ? AND bucket <= ?", [
          channelId,
          range.before === undefined ? 2 ** 31 - 1 : bucketOf(range.before),
        ])
      : await this.cql.q("SELECT bucket FROM {ks}.message_buckets WHERE channel_id = ? AND bucket >= ? ORDER BY bucket ASC", [
          channelId,
          range.after === undefined ? 0 : bucketOf(range.after),
        ]);
    const out: StoredMessage[] = [];
    for (const row of bucketRows.rows) {
      const bucket = row.get("bucket") as number;
      if (range.after !== undefined && newestFirst && bucket < bucketOf(range.after)) break;
      if (range.before !== undefined && !newestFirst && bucket > bucketOf(range.before)) break;
      let upper = range.before ?? MAX_ID;
      let lower = range.after ?? -1n;
      for (;;) {
        const want = range.limit - out.length;
        const read = want + historySlack(want);
        const page = await this.cql.q(
          `SELECT * FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND id < ? AND id > ?${newestFirst ? "" : " ORDER BY id ASC"} LIMIT ?`,
          [channelId, bucket, upper, lower, read],
        );
        for (const r of page.rows) {
          const m = toStoredMessage(r);
          if (inHistory(m) && out.length < range.limit) out.push(m);
        }
        if (out.length >= range.limit || page.rows.length < read) break;
        const last = page.rows.at(-1)!.get("id") as bigint;
        if (newestFirst) upper = last;
        else lower = last;
      }
      if (out.length >= range.limit) break;
    }
    return out;
  }

  async listThreadReplies(channelId: bigint, rootId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    for (let from = range; out.length < range.limit; ) {
      const want = range.limit - out.length;
      const ids = await this.threads.replyIds(channelId, rootId, from, want);
      // A reply deleted while this read runs may still be in the index.
      out.push(...(await this.getMany(channelId, ids)).filter((m) => m.deletedAt === 0));
      if (ids.length < want) break;
      from = range.order === "newest-first" ? { ...from, before: ids.at(-1)! } : { ...from, after: ids.at(-1)! };
    }
    return out;
  }

  // --- posting ---

  /**
   * Posts: the message row (and for a reply the thread index row), then the
   * log entries ("posted", and "thread_updated" for the root), then the
   * root's summary and post_seqs.
   *
   * The same record again (a write-behind log redelivers) finds post_seqs
   * and answers with those entries, logging nothing; it is read alongside
   * the row's write, so it costs no extra round trip, and not at all when a
   * clientMsgId claim shows this is the first append. If a process died
   * between its log append and writing post_seqs, the redelivery logs a
   * second "posted" (and "thread_updated") for the same message. A replayer
   * that must not count a message twice takes a "posted" entry only when
   * its seq is the first of the row's post_seqs (or the row has none yet)
   * and skips the other. A second "thread_updated" is harmless: it only
   * says to re-read the root.
   *
   * The log place is taken at the call, before any await: this node's posts
   * of a channel get seqs in the order they were appended, which is their
   * id order (posting appends right after taking the id), however their
   * writes finish. Across nodes, seq order is the order of claims.
   */
  async append(m: MessageRecord): Promise<AppendResult> {
    const place = { slot: this.log.reserve(m.channelId) };
    try {
      return await this.appendIn(m, place);
    } finally {
      place.slot.release();
    }
  }

  private async appendIn(m: MessageRecord, place: { slot: LogSlot }): Promise<AppendResult> {
    const rootId = m.threadRootId ?? 0n;
    const root = rootId === 0n ? undefined : await this.get(m.channelId, rootId);
    if (rootId !== 0n && (!root || root.threadRootId !== 0n)) throw new NotFoundError("thread_root_id");
    const posted: StoredMessage = { ...newStoredMessage(m), alsoToChannel: root !== undefined && (m.alsoToChannel ?? false) };
    let first = false;
    if (m.clientMsgId !== "") {
      // A post that must wait for another holder of its key leaves its place
      // meanwhile (so it holds up nobody) and takes a new one if it goes on.
      let left = false;
      const claim = await this.claimKey(m, () => {
        place.slot.release();
        left = true;
      });
      if (claim.original) return { message: claim.original, duplicate: true, changes: [] };
      if (left) place.slot = this.log.reserve(m.channelId);
      first = claim.first;
    }
    const [earlier] = await Promise.all([
      first ? undefined : this.cql.q(`SELECT post_seqs FROM {ks}.messages ${WHERE_MESSAGE}`, messageKey(m.channelId, m.id)),
      this.writePosted(posted),
      root && this.threads.addReply(m.channelId, rootId, m.id, m.senderId),
    ]);
    const seqs = earlier?.first()?.get("post_seqs") as bigint[] | null | undefined;
    if (seqs) return this.appendedBefore(posted, seqs);

    const at = timestampOfId(m.id);
    const entries: NewChange[] = [{ kind: "posted", messageId: m.id, actorId: m.senderId, emoji: "", at }];
    if (root) entries.push({ kind: "thread_updated", messageId: rootId, actorId: m.senderId, emoji: "", at });
    const changes = await place.slot.append(entries);
    const [thread] = await Promise.all([
      root && this.threads.summarise(m.channelId, rootId, changes.at(-1)!.seq),
      this.cql.qSoon(`UPDATE {ks}.messages SET post_seqs = ? ${WHERE_MESSAGE}`, [changes.map((c) => c.seq), ...messageKey(m.channelId, m.id)]),
    ]);
    return { message: posted, duplicate: false, changes, ...(root && { root: { ...root, thread } }) };
  }

  /** The posted cells, at the posted timestamp: writing them again changes nothing, even after an edit or a delete. */
  private async writePosted(m: StoredMessage): Promise<void> {
    const bucket = bucketOf(m.id);
    const mentioned = m.mentions.userIds.length > 0 || m.mentions.channel || m.mentions.here;
    const cells = mentionsCells(m.mentions);
    // Absent values stay unset rather than null: a null would write a tombstone per message.
    await Promise.all([
      this.cql.qSoon(
        `INSERT INTO {ks}.messages (channel_id, bucket, id, sender_id, text, client_msg_id, thread_root_id, also_to_channel,
           mentioned_user_ids, mentions_channel, mentions_here) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
        [
          m.channelId,
          bucket,
          m.id,
          m.senderId,
          m.text,
          m.clientMsgId === "" ? unset : m.clientMsgId,
          m.threadRootId === 0n ? unset : m.threadRootId,
          m.alsoToChannel ? true : unset,
          mentioned ? cells.mentioned_user_ids : unset,
          mentioned ? cells.mentions_channel : unset,
          mentioned ? cells.mentions_here : unset,
          postedTimestamp(m.id),
        ],
      ),
      this.bucketWritten(m.channelId, bucket),
    ]);
  }

  private bucketWritten(channelId: bigint, bucket: number): Promise<unknown> {
    const key = `${channelId}:${bucket}`;
    let written = this.knownBuckets.get(key);
    if (!written) {
      written = this.cql.qSoon("INSERT INTO {ks}.message_buckets (channel_id, bucket) VALUES (?, ?)", [channelId, bucket]);
      this.knownBuckets.set(key, written);
      written.catch(() => this.knownBuckets.delete(key));
    }
    return written;
  }

  /** What an append of this record answered the first time, with the message (and root) as they are now. */
  private async appendedBefore(posted: StoredMessage, seqs: readonly bigint[]): Promise<AppendResult> {
    const [changes, message, root] = await Promise.all([
      this.log.at(posted.channelId, seqs),
      this.get(posted.channelId, posted.id),
      posted.threadRootId === 0n ? undefined : this.get(posted.channelId, posted.threadRootId),
    ]);
    return { message: message ?? posted, duplicate: false, changes, ...(root && { root }) };
  }

  /**
   * Claims m's idempotency key for m.id. Returns the original message when
   * another message holds the key; otherwise m may be written, and `first`
   * tells whether this is certainly the record's first append (the claim was
   * made now, not found from an earlier attempt of the same record).
   */
  private async claimKey(m: MessageRecord, beforeWaiting: () => void): Promise<{ original?: StoredMessage; first: boolean }> {
    const key = [m.channelId, m.senderId, m.clientMsgId];
    const claim = await this.cql.qSoon(
      "INSERT INTO {ks}.message_keys (channel_id, sender_id, client_msg_id, message_id) VALUES (?, ?, ?, ?) IF NOT EXISTS",
      [...key, m.id],
    );
    if (claim.wasApplied()) return { first: true };
    let holder = claim.first().get("message_id") as bigint;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (holder === m.id) return { first: false };
      // The first writer may still be writing the row: wait for it briefly.
      if (attempt === 0) beforeWaiting();
      for (let i = 0; i < 50; i++) {
        const original = await this.get(m.channelId, holder);
        if (original) return { original, first: false };
        await new Promise((r) => setTimeout(r, 20));
      }
      // Its writer died between the claim and the row (it never answered, so
      // nobody holds that id): take the key over, unless someone else just did.
      const takeover = await this.cql.q(
        "UPDATE {ks}.message_keys SET message_id = ? WHERE channel_id = ? AND sender_id = ? AND client_msg_id = ? IF message_id = ?",
        [m.id, ...key, holder],
      );
      if (takeover.wasApplied()) return { first: true };
      holder = takeover.first().get("message_id") as bigint;
    }
    throw new Error(`idempotency key of message ${m.id} keeps moving between writers`);
  }

  // --- changes to a message ---

  private entry(kind: ChangeKind, messageId: bigint, actorId: bigint, at: number, emoji = ""): NewChange {
    return { kind, messageId, actorId, emoji, at };
  }

  /**
   * An LWT conditioned on deleted_at alone: concurrent edits do not fail
   * each other, Paxos applies them one after another, and the last applied
   * is the text every node reads. The edit goes in its own cell (edited), so
   * a redelivered post cannot overwrite it.
   */
  async edit(e: MessageEdit): Promise<MessageChange> {
    const { message } = await this.live(e.channelId, e.id);
    if (message.senderId !== e.senderId) throw new NotFoundError("message");
    const applied = await this.cql.q(`UPDATE {ks}.messages SET edited = ?, edited_at = ? ${WHERE_MESSAGE} IF deleted_at = null`, [
      { text: e.text, ...mentionsCells(e.mentions) },
      BigInt(e.at),
      ...messageKey(e.channelId, e.id),
    ]);
    if (!applied.wasApplied()) throw new NotFoundError("message");
    const changes = await this.log.append(e.channelId, [this.entry("edited", e.id, e.senderId, e.at)]);
    return { message: { ...message, text: e.text, mentions: e.mentions, editedAt: e.at }, changes };
  }

  /**
   * One LWT marks the message deleted and drops its edit and pin; it is
   * conditioned on pin_version too, so "unpinned" is logged exactly when
   * this delete removed a pin. Then the posted text is scrubbed, reactions
   * dropped, a reply leaves its thread's index, and the entries are logged.
   */
  async delete(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    const key = messageKey(channelId, id);
    for (let attempt = 0; ; attempt++) {
      const { message, pinVersion } = await this.live(channelId, id);
      const version = (pinVersion ?? 0) + 1;
      const applied = await this.cql.q(
        `UPDATE {ks}.messages SET deleted_at = ?, edited = null, pinned_at = null, pinned_by = null, pin_version = ? ${WHERE_MESSAGE}
           IF deleted_at = null AND pin_version = ?`,
        [BigInt(at), version, ...key, pinVersion],
      );
      if (!applied.wasApplied()) {
        if (applied.first().get("deleted_at") !== null) throw new NotFoundError("message");
        if (attempt === PIN_ATTEMPTS) throw new StoreUnavailableError(`message ${id}: its pin keeps changing`);
        continue;
      }
      const wasPinned = message.pinnedAt !== 0;
      const rootId = message.threadRootId;
      await Promise.all([
        this.cql.q(`DELETE text, mentioned_user_ids, mentions_channel, mentions_here FROM {ks}.messages USING TIMESTAMP ? ${WHERE_MESSAGE}`, [
          afterPosted(id),
          ...key,
        ]),
        wasPinned && this.writePin(channelId, id, version, undefined),
        this.reactions.dropAll(channelId, id),
        rootId !== 0n && this.threads.removeReply(channelId, rootId, id),
      ]);
      const entries = [this.entry("deleted", id, actorId, at)];
      if (wasPinned) entries.unshift(this.entry("unpinned", id, actorId, at));
      if (rootId !== 0n) entries.push(this.entry("thread_updated", rootId, actorId, at));
      const changes = await this.log.append(channelId, entries);
      if (rootId !== 0n) await this.threads.summarise(channelId, rootId, changes.at(-1)!.seq);
      return {
        message: { ...message, text: "", mentions: { userIds: [], channel: false, here: false }, deletedAt: at, reactions: [], pinnedAt: 0, pinnedBy: 0n },
        changes,
      };
    }
  }

  /**
   * Pin and unpin: an LWT on the message row moves pin_version one up (and
   * fails if another pin change or a delete got there first: then read
   * again), then the channel_pins row follows at that version's timestamp.
   * The limit is checked before, against channel_pins: two pins racing for
   * the last place may both get it.
   */
  async pin(channelId: bigint, id: bigint, actorId: bigint, at: number, maxPins: number): Promise<MessageChange> {
    for (let attempt = 0; ; attempt++) {
      const { message, pinVersion } = await this.live(channelId, id);
      if (message.pinnedAt !== 0) return { message, changes: [] };
      const pins = await this.cql.q("SELECT count(*) AS n FROM {ks}.channel_pins WHERE channel_id = ?", [channelId]);
      if (Number(pins.first().get("n")) >= maxPins) throw new LimitExceededError("pins", maxPins);
      const version = (pinVersion ?? 0) + 1;
      const applied = await this.cql.q(
        `UPDATE {ks}.messages SET pinned_at = ?, pinned_by = ?, pin_version = ? ${WHERE_MESSAGE} IF deleted_at = null AND pin_version = ?`,
        [BigInt(at), actorId, version, ...messageKey(channelId, id), pinVersion],
      );
      if (!applied.wasApplied()) {
        if (applied.first().get("deleted_at") !== null) throw new NotFoundError("message");
        if (attempt === PIN_ATTEMPTS) throw new StoreUnavailableError(`message ${id}: its pin keeps changing`);
        continue;
      }
      await this.writePin(channelId, id, version, { at, by: actorId });
      const changes = await this.log.append(channelId, [this.entry("pinned", id, actorId, at)]);
      return { message: { ...message, pinnedAt: at, pinnedBy: actorId }, changes };
    }
  }

  async unpin(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    for (let attempt = 0; ; attempt++) {
      const { message, pinVersion } = await this.live(channelId, id);
      if (message.pinnedAt === 0) return { message, changes: [] };
      const version = (pinVersion ?? 0) + 1;
      const applied = await this.cql.q(
        `UPDATE {ks}.messages SET pinned_at = null, pinned_by = null, pin_version = ? ${WHERE_MESSAGE} IF deleted_at = null AND pin_version = ?`,
        [version, ...messageKey(channelId, id), pinVersion],
      );
      if (!applied.wasApplied()) {
        if (applied.first().get("deleted_at") !== null) throw new NotFoundError("message");
        if (attempt === PIN_ATTEMPTS) throw new StoreUnavailableError(`message ${id}: its pin keeps changing`);
        continue;
      }
      await this.writePin(channelId, id, version, undefined);
      const changes = await this.log.append(channelId, [this.entry("unpinned", id, actorId, at)]);
      return { message: { ...message, pinnedAt: 0, pinnedBy: 0n }, changes };
    }
  }

  /** The channel_pins row at the timestamp of the pin version that set it: the later version wins, whatever order they land in. */
  private writePin(channelId: bigint, id: bigint, version: number, pin: { at: number; by: bigint } | undefined) {
    return pin
      ? this.cql.q("INSERT INTO {ks}.channel_pins (channel_id, message_id, pinned_at, pinned_by) VALUES (?, ?, ?, ?) USING TIMESTAMP ?", [
          channelId,
          id,
          BigInt(pin.at),
          pin.by,
          BigInt(version),
        ])
      : this.cql.q("DELETE FROM {ks}.channel_pins USING TIMESTAMP ? WHERE channel_id = ? AND message_id = ?", [BigInt(version), channelId, id]);
  }

  /** Pinned messages, most recently pinned first, as their rows say (a channel_pins row without a pin behind it is left out). */
  async listPins(channelId: bigint): Promise<StoredMessage[]> {
    const rows = await this.cql.q("SELECT message_id FROM {ks}.channel_pins WHERE channel_id = ?", [channelId]);
    const messages = await this.getMany(channelId, rows.rows.map((r) => r.get("message_id") as bigint));
    return messages.filter((m) => m.pinnedAt !== 0).sort((a, b) => b.pinnedAt - a.pinnedAt || (b.id > a.id ? 1 : b.id < a.id ? -1 : 0));
  }

  /**
   * The reaction row first, then the entry, then the summary recomputed at
   * the entry's seq. Whether anything changes is read before; the emoji
   * limit is checked against the summary before the write, so two new emoji
   * racing for the last place may both get in.
   */
  async addReaction(r: ReactionChange, maxEmoji: number): Promise<MessageChange> {
    const [{ message }, exists] = await Promise.all([this.live(r.channelId, r.messageId), this.reactions.has(r)]);
    if (exists) return { message, changes: [] };
    if (!message.reactions.some((x) => x.emoji === r.emoji) && message.reactions.length >= maxEmoji) {
      throw new LimitExceededError("reactions", maxEmoji);
    }
    await this.reactions.add(r);
    return this.reactionChanged(message, r, "reaction_added");
  }

  async removeReaction(r: ReactionChange): Promise<MessageChange> {
    const [{ message }, exists] = await Promise.all([this.live(r.channelId, r.messageId), this.reactions.has(r)]);
    if (!exists) return { message, changes: [] };
    await this.reactions.remove(r);
    return this.reactionChanged(message, r, "reaction_removed");
  }

  private async reactionChanged(message: StoredMessage, r: ReactionChange, kind: ChangeKind): Promise<MessageChange> {
    const changes = await this.log.append(r.channelId, [this.entry(kind, r.messageId, r.userId, r.at, r.emoji)]);
    const reactions = await this.reactions.summarise(r.channelId, r.messageId, changes[0]!.seq);
    return { message: { ...message, reactions }, changes };
  }

  reactionsOfUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Promise<Array<{ messageId: bigint; emoji: string }>> {
    return this.reactions.ofUser(channelId, userId, fromId, toId);
  }
}

/**
 * Each channel's change log: seq 1, 2, 3, ... with no gaps and no repeats
 * across every API node, visible in seq order. The table, its chunks and why
 * one conditional batch claims numbers and writes rows together:
 * infra/cassandra/schema/003_conversations.cql.
 */
import { LRUCache } from "lru-cache";
import { StoreUnavailableError, type ChangeRecord } from "../store.js";
import type { Cql, Row } from "./cql.js";

/** Seqs per partition of channel_changes; see the .cql for the size arithmetic. */
export const CHUNK_SIZE = 65_536n;
/** Rows in one claim: ~10 KB of a single partition. */
const MAX_BATCH_ROWS = 100;
/**
 * Claims that lost to another node in a row before an append gives up. Each
 * loss answers with the head that won, so the next try normally succeeds;
 * this only bounds a pathological case.
 */
const MAX_LOST_CLAIMS = 100;

/**
 * The write timestamp of a cell that holds what the change with this seq
 * computed (summaries, the history revision): the highest seq wins. Those
 * cells are written with no other timestamps (see the .cql), so the seq
 * itself serves; nothing needs to sit above real microsecond clocks.
 */
export const seqTimestamp = (seq: bigint): bigint => seq;

/** A change to log; the log numbers it. */
export type NewChange = Omit<ChangeRecord, "channelId" | "seq">;

/** One caller's entries, numbered as their batches commit (an op may span two batches at a chunk boundary). */
interface Pending {
  /** Undefined while only reserved: the caller is still writing the state its entries will describe. */
  entries: NewChange[] | undefined;
  logged: ChangeRecord[];
  resolve: (logged: ChangeRecord[]) => void;
  reject: (err: unknown) => void;
}

/** A place in a channel's log queue, taken before the caller writes its state. */
export interface LogSlot {
  /** Logs entries in this place (once) and answers them numbered, once every reader can see them. */
  append(entries: NewChange[]): Promise<ChangeRecord[]>;
  /** Gives the place up: nothing to log after all. Does nothing after append. */
  release(): void;
}

interface ChannelLog {
  /** The highest seq this store knows is claimed; undefined: read it before claiming. */
  head: bigint | undefined;
  queue: Pending[];
  claiming: boolean;
}

const toChange = (channelId: bigint, r: Row): ChangeRecord => ({
  channelId,
  seq: r.get("seq") as bigint,
  kind: r.get("kind") as ChangeRecord["kind"],
  messageId: r.get("message_id") as bigint,
  actorId: r.get("actor_id") as bigint,
  emoji: (r.get("emoji") as string | null) ?? "",
  at: Number(r.get("at")),
});

export class ChangeLog {
  // The head per channel. Evicting one that is claiming is harmless: its
  // claim finishes, and the next append reads the head again.
  private readonly channels = new LRUCache<bigint, ChannelLog>({ max: 100_000 });
  private readonly claiming = new Set<Promise<void>>();

  /** chunkSize: CHUNK_SIZE; smaller only in tests of chunk boundaries. */
  constructor(
    private readonly cql: Cql,
    private readonly chunkSize = CHUNK_SIZE,
  ) {}

  private chunkOf(seq: bigint): bigint {
    return (seq - 1n) / this.chunkSize;
  }

  /** The last seq of a chunk, which is its head when it is full. */
  private chunkEnd(chunk: bigint): bigint {
    return (chunk + 1n) * this.chunkSize;
  }

  /**
   * Logs entries (in this order) and answers them numbered, once they are
   * visible to every reader. Entries of one call are consecutive, except
   * when they straddle a chunk boundary and another node's batch lands
   * between the two halves.
   */
  append(channelId: bigint, entries: NewChange[]): Promise<ChangeRecord[]> {
    return this.reserve(channelId).append(entries);
  }

  /**
   * Takes the next place in this store's queue for the channel now, to be
   * filled once the caller has written its state: this store logs its
   * changes of a channel in the order their places were taken. Later
   * entries wait while an earlier place is not filled yet (the price: a
   * slow state write holds up the channel's changes queued behind it).
   */
  reserve(channelId: bigint): LogSlot {
    let log = this.channels.get(channelId);
    if (!log) this.channels.set(channelId, (log = { head: undefined, queue: [], claiming: false }));
    const channel = log;
    let pending!: Pending;
    const logged = new Promise<ChangeRecord[]>((resolve, reject) => (pending = { entries: undefined, logged: [], resolve, reject }));
    channel.queue.push(pending);
    let used = false;
    const leave = () => {
      const at = channel.queue.indexOf(pending);
      if (at !== -1) channel.queue.splice(at, 1);
    };
    return {
      append: (entries) => {
        if (used) throw new Error("a log slot is filled once");
        used = true;
        if (entries.length === 0) {
          leave();
          pending.resolve([]);
        } else {
          pending.entries = entries;
        }
        this.claimIfReady(channelId, channel);
        return logged;
      },
      release: () => {
        if (used) return;
        used = true;
        leave();
        this.claimIfReady(channelId, channel);
      },
    };
  }

  private claimIfReady(channelId: bigint, log: ChannelLog): void {
    if (log.claiming || log.queue[0]?.entries === undefined) return;
    log.claiming = true;
    const run = this.claimQueued(channelId, log).finally(() => this.claiming.delete(run));
    this.claiming.add(run);
  }

  /** Resolves once no claim is in flight (close() waits for it). */
  async idle(): Promise<void> {
    while (this.claiming.size > 0) await Promise.all(this.claiming);
  }

  /** One claim in flight per channel: whatever queued meanwhile goes in the next batch. */
  private async claimQueued(channelId: bigint, log: ChannelLog): Promise<void> {
    let lost = 0;
    while (log.queue[0]?.entries !== undefined) {
      try {
        const head = log.head ?? (await this.findHead(channelId));
        const chunk = this.chunkOf(head + 1n);
        const batch = takeBatch(log.queue, Math.min(MAX_BATCH_ROWS, Number(this.chunkEnd(chunk) - head)));
        const winner = await this.claim(channelId, chunk, head, batch);
        if (winner !== undefined) {
          log.head = winner;
          if (++lost > MAX_LOST_CLAIMS) throw new StoreUnavailableError(`change log of channel ${channelId}: lost ${lost} claims in a row`);
          continue;
        }
        lost = 0;
        log.head = head + BigInt(batch.length);
        const records = batch.map(({ pending, entry }, i) => {
          const record = { channelId, seq: head + BigInt(i + 1), ...entry };
          pending.logged.push(record);
          return record;
        });
        await this.raiseRevision(channelId, records);
        while (log.queue[0] && log.queue[0].logged.length === log.queue[0].entries?.length) {
          const done = log.queue.shift()!;
          done.resolve(done.logged);
        }
      } catch (err) {
        // Unknown outcome (a timeout may hide a batch that was applied): read
        // the head again next time, and fail whatever was waiting. An op
        // failed here may have had entries logged already (an earlier half
        // at a chunk boundary, or this batch if it was applied after all):
        // entries name what changed, so a replayer that finds no change
        // behind one only re-reads a message as it is. Places not filled
        // yet stay: their callers have not asked for an answer.
        log.head = undefined;
        const failed = log.queue.filter((p) => p.entries !== undefined);
        log.queue = log.queue.filter((p) => p.entries === undefined);
        for (const p of failed) p.reject(err);
      }
    }
    log.claiming = false;
  }

  /** Writes the batch if head is still the chunk's head; otherwise returns the head that won. */
  private async claim(channelId: bigint, chunk: bigint, head: bigint, batch: Array<{ entry: NewChange }>): Promise<bigint | undefined> {
    const fresh = head === chunk * this.chunkSize;
    if (fresh && chunk > 0n) {
      await this.cql.q("INSERT INTO {ks}.channel_change_chunks (channel_id, chunk) VALUES (?, ?)", [channelId, chunk]);
    }
    const result = await this.cql.batch([
      {
        cql: "UPDATE {ks}.channel_changes SET head = ? WHERE channel_id = ? AND chunk = ? IF head = ?",
        params: [head + BigInt(batch.length), channelId, chunk, fresh ? null : head],
      },
      ...batch.map(({ entry }, i) => ({
        cql: "INSERT INTO {ks}.channel_changes (channel_id, chunk, seq, kind, message_id, actor_id, emoji, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params: [channelId, chunk, head + BigInt(i + 1), entry.kind, entry.messageId, entry.actorId, entry.emoji, BigInt(Math.trunc(entry.at))],
      })),
    ]);
    if (result.wasApplied()) return undefined;
    // null: nothing in this chunk yet, so the one before it is full.
    return (result.first()?.get("head") as bigint | null | undefined) ?? chunk * this.chunkSize;
  }

  /** The channel's head from Cassandra: the newest chunk opened, then forward past full ones. */
  private async findHead(channelId: bigint): Promise<bigint> {
    const opened = (await this.cql.q("SELECT chunk FROM {ks}.channel_change_chunks WHERE channel_id = ? LIMIT 1", [channelId])).first();
    // A stale read only costs a lost claim, which answers with the real head.
    for (let chunk = (opened?.get("chunk") as bigint | undefined) ?? 0n; ; chunk++) {
      const row = (await this.cql.q("SELECT head FROM {ks}.channel_changes WHERE channel_id = ? AND chunk = ? LIMIT 1", [channelId, chunk])).first();
      const head = (row?.get("head") as bigint | null | undefined) ?? null;
      if (head === null) return chunk * this.chunkSize;
      if (head < this.chunkEnd(chunk)) return head;
    }
  }

  /** historyRevision moves with every kind but "posted"; written before the batch's callers are answered. */
  private async raiseRevision(channelId: bigint, records: ChangeRecord[]): Promise<void> {
    const latest = records.findLast((r) => r.kind !== "posted");
    if (!latest) return;
    await this.cql.q("UPDATE {ks}.channel_revisions USING TIMESTAMP ? SET rev = ? WHERE channel_id = ?", [
      seqTimestamp(latest.seq),
      latest.seq,
      channelId,
    ]);
  }

  /** Up to limit changes with seq above afterSeq, in seq order, across chunks. */
  async list(channelId: bigint, afterSeq: bigint, limit: number): Promise<ChangeRecord[]> {
    const out: ChangeRecord[] = [];
    let after = afterSeq < 0n ? 0n : afterSeq;
    while (out.length < limit) {
      const chunk = this.chunkOf(after + 1n);
      const rows = (
        await this.cql.q(
          "SELECT seq, kind, message_id, actor_id, emoji, at FROM {ks}.channel_changes WHERE channel_id = ? AND chunk = ? AND seq > ? LIMIT ?",
          [channelId, chunk, after, limit - out.length],
        )
      ).rows;
      out.push(...rows.map((r) => toChange(channelId, r)));
      // The chunk's last seq read: the log may go on in the next chunk.
      if (rows.length === 0 || out.at(-1)!.seq !== this.chunkEnd(chunk)) break;
      after = this.chunkEnd(chunk);
    }
    return out;
  }

  /** The entries with these seqs (a redelivered append's answer), in this order. */
  async at(channelId: bigint, seqs: readonly bigint[]): Promise<ChangeRecord[]> {
    const rows = await Promise.all(
      seqs.map((seq) =>
        this.cql.q("SELECT seq, kind, message_id, actor_id, emoji, at FROM {ks}.channel_changes WHERE channel_id = ? AND chunk = ? AND seq = ?", [
          channelId,
          this.chunkOf(seq),
          seq,
        ]),
      ),
    );
    return rows.flatMap((r) => r.rows.map((row) => toChange(channelId, row)));
  }

  async historyRevision(channelId: bigint): Promise<bigint> {
    const row = (await this.cql.q("SELECT rev FROM {ks}.channel_revisions WHERE channel_id = ?", [channelId])).first();
    return (row?.get("rev") as bigint | null | undefined) ?? 0n;
  }
}

/**
 * The next entries in queue order, up to max and up to the first place not
 * filled yet, without taking them (a lost claim retries the same ones).
 */
function takeBatch(queue: Pending[], max: number): Array<{ pending: Pending; entry: NewChange }> {
  const batch: Array<{ pending: Pending; entry: NewChange }> = [];
  for (const pending of queue) {
    if (pending.entries === undefined) return batch;
    for (const entry of pending.entries.slice(pending.logged.length)) {
      if (batch.length === max) return batch;
      batch.push({ pending, entry });
    }
  }
  return batch;
}

/**
 * The scale-out store on Cassandra (cassandra-driver), satisfying the same
 * ChatStore contract as SQLite. Schema: infra/cassandra/schema/*.cql.
 *
 * Uniqueness (emails, group channel names, direct message pairs, post
 * idempotency keys, memberships), the change log's sequence and the changes
 * to one message (edits, deletes, pins) use lightweight transactions, and
 * only there. Everything else is plain writes at the configured consistency
 * (LOCAL_QUORUM by default) with prepared statements.
 *
 * This file holds the connection, availability, users, channels and
 * memberships; messages are messages.ts (with threads.ts and reactions.ts),
 * the change log change-log.ts.
 */
import cassandra from "cassandra-driver";
import {
  AlreadyExistsError,
  applyMembershipChanges,
  NotFoundError,
  StoreUnavailableError,
  type AppendResult,
  type ChangeRecord,
  type ChannelChanges,
  type ChannelRecord,
  type ChatStore,
  type MembershipChanges,
  type MembershipRecord,
  type MessageChange,
  type MessageEdit,
  type MessageRange,
  type MessageRecord,
  type ReactionChange,
  type StoredMessage,
  type UserRecord,
} from "../store.js";
import type { CassandraConsistency, SerialConsistency } from "../../core/config.js";
import { ChangeLog } from "./change-log.js";
import type { Cql } from "./cql.js";
import { Messages } from "./messages.js";
import { applySchema } from "./migrations.js";

export { BUCKET_MS, bucketOf } from "./message-rows.js";

const { types } = cassandra;

export interface CassandraStoreOptions {
  contactPoints: string[];
  localDataCenter: string;
  keyspace: string;
  /** CQL replication map for the keyspace, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}. */
  replication: string;
  /** Consistency of reads and writes (LWTs use LOCAL_SERIAL). */
  consistency?: CassandraConsistency;
  /** Consistency of the Paxos phase of lightweight transactions (LOCAL_SERIAL by default). */
  serialConsistency?: SerialConsistency;
  /** Extra cassandra-driver client options (pooling, timeouts, auth, TLS); queryOptions are the store's own. */
  client?: Partial<cassandra.ClientOptions>;
}

const USER_SHARDS = 16;
const shardOf = (id: bigint) => Number(id % BigInt(USER_SHARDS));

type Row = cassandra.types.Row;

const toUser = (r: Row): UserRecord => ({
  id: r.get("id") as bigint,
  name: r.get("name") as string,
  email: r.get("email") as string,
  createdAt: Number(r.get("created_at")),
});

const toChannel = (r: Row): ChannelRecord => ({
  id: r.get("id") as bigint,
  kind: r.get("kind") as ChannelRecord["kind"],
  name: (r.get("name") as string | null) ?? "",
  visibility: r.get("visibility") as ChannelRecord["visibility"],
  delivery: r.get("delivery") as ChannelRecord["delivery"],
  topic: (r.get("topic") as string | null) ?? "",
  createdBy: r.get("created_by") as bigint,
  createdAt: Number(r.get("created_at")),
  directUserIds: ((r.get("direct_user_ids") as bigint[] | null) ?? []).map((x) => BigInt(x)),
});

const toMembership = (r: Row): MembershipRecord => ({
  channelId: r.get("channel_id") as bigint,
  userId: r.get("user_id") as bigint,
  role: r.get("role") as MembershipRecord["role"],
  isStar: Boolean(r.get("is_star")),
  isFavorite: Boolean(r.get("is_favorite")),
  mute: Boolean(r.get("mute")),
  preferences: (r.get("preferences") as Record<string, string> | null) ?? {},
  joinedAt: Number(r.get("joined_at")),
});

/**
 * The store, plus its driver client and keyspace: for the node id lease
 * (store/cassandra/node-lease.ts), which lives in the same keyspace and schema
 * but is not part of the ChatStore contract. close() shuts the client down.
 */
export interface CassandraChatStore extends ChatStore {
  readonly client: cassandra.Client;
  readonly keyspace: string;
}

export async function createCassandraStore(options: CassandraStoreOptions): Promise<CassandraChatStore> {
  const consistency = types.consistencies[options.consistency ?? "localQuorum"];
  const client = new cassandra.Client({
    contactPoints: options.contactPoints,
    localDataCenter: options.localDataCenter,
    encoding: { useBigIntAsLong: true },
    ...options.client,
    queryOptions: { consistency, serialConsistency: types.consistencies[options.serialConsistency ?? "localSerial"], prepare: true },
  });
  await client.connect();
  await applySchema(client, { keyspace: options.keyspace, replication: options.replication });
  return new CassandraStore(client, options.keyspace);
}

/** How often a store that lost its cluster asks whether it is back. */
const AVAILABILITY_PROBE_MS = 1_000;

const UNAVAILABLE_RESPONSES = new Set<number>([
  types.responseErrorCodes.unavailableException,
  types.responseErrorCodes.overloaded,
  types.responseErrorCodes.isBootstrapping,
  types.responseErrorCodes.writeTimeout,
  types.responseErrorCodes.readTimeout,
]);

/** Driver errors that mean "the cluster could not answer now", as opposed to a bad query or a bug. */
function isUnavailability(err: unknown): boolean {
  const { errors } = cassandra;
  if (err instanceof errors.NoHostAvailableError || err instanceof errors.OperationTimedOutError || err instanceof errors.BusyConnectionError) {
    return true;
  }
  // A connection that broke under a request (the node went down with it in flight).
  if (err instanceof errors.DriverError && (err as { isSocketError?: boolean }).isSocketError === true) return true;
  return err instanceof errors.ResponseError && UNAVAILABLE_RESPONSES.has(err.code);
}

class CassandraStore implements CassandraChatStore {
  private readonly log: ChangeLog;
  private readonly messages: Messages;

  constructor(
    readonly client: cassandra.Client,
    readonly keyspace: string,
  ) {
    const cql: Cql = {
      q: (text, params) => this.q(text, params),
      qSoon: (text, params) => this.qSoon(text, params),
      qAll: (text, params) => this.qAll(text, params),
      batch: (statements) => this.batch(statements),
    };
    this.log = new ChangeLog(cql);
    this.messages = new Messages(cql, this.log);
  }

  // Every query's text with the keyspace filled in, rendered once: q() runs on every post and read.
  private readonly statements = new Map<string, string>();

  private statement(cql: string): string {
    let statement = this.statements.get(cql);
    if (statement === undefined) this.statements.set(cql, (statement = cql.replaceAll("{ks}", this.keyspace)));
    return statement;
  }

  private q(cql: string, params: unknown[] = []) {
    return this.client.execute(this.statement(cql), params, { prepare: true }).then(this.answered, this.failed);
  }

  private async qAll(cql: string, params: unknown[]): Promise<cassandra.types.Row[]> {
    const rows: cassandra.types.Row[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.client
        .execute(this.statement(cql), params, { prepare: true, ...(pageState !== undefined && { pageState }) })
        .then(this.answered, this.failed);
      rows.push(...page.rows);
      pageState = page.pageState ?? undefined;
    } while (pageState !== undefined);
    return rows;
  }

  private batch(statements: Array<{ cql: string; params: unknown[] }>) {
    const queries = statements.map((s) => ({ query: this.statement(s.cql), params: s.params }));
    return this.client.batch(queries, { prepare: true }).then(this.answered, this.failed);
  }

  // Availability: lost with the first query the cluster could not answer,
  // back with the next one it answers, or with the probe that runs meanwhile.
  available = true;
  private readonly availabilityListeners = new Set<(available: boolean) => void>();
  private probe: NodeJS.Timeout | undefined;

  watchAvailability(listener: (available: boolean) => void): () => void {
    this.availabilityListeners.add(listener);
    return () => this.availabilityListeners.delete(listener);
  }

  private setAvailable(available: boolean) {
    if (this.available === available) return;
    this.available = available;
    if (available) {
      clearInterval(this.probe);
      this.probe = undefined;
    } else {
      this.probe = setInterval(() => void this.q("SELECT release_version FROM system.local").catch(() => {}), AVAILABILITY_PROBE_MS);
      this.probe.unref();
    }
    for (const listener of this.availabilityListeners) listener(available);
  }

  private readonly answered = (result: cassandra.types.ResultSet) => {
    if (!this.available) this.setAvailable(true);
    return result;
  };

  private readonly failed = (err: unknown): never => {
    if (!isUnavailability(err)) throw err;
    this.setAvailable(false);
    throw new StoreUnavailableError(`Cassandra: ${(err as Error).message}`, { cause: err });
  };

  // Writes of posts started within one turn of the event loop are sent
  // together: the driver coalesces requests queued in the same tick into one
  // socket write per connection, and a write(2) per post to Cassandra was the
  // API's largest single cost in a profile of bench:cluster's posting.
  private pendingWrites: Array<() => void> = [];
  private readonly sendPendingWrites = () => {
    const writes = this.pendingWrites;
    this.pendingWrites = [];
    for (const send of writes) send();
  };

  private qSoon(cql: string, params: unknown[]) {
    return new Promise<cassandra.types.ResultSet>((resolve, reject) => {
      if (this.pendingWrites.length === 0) setImmediate(this.sendPendingWrites);
      this.pendingWrites.push(() => this.q(cql, params).then(resolve, reject));
    });
  }

  async createUser(user: UserRecord): Promise<void> {
    const claim = await this.q("INSERT INTO {ks}.users_by_email (email, user_id) VALUES (?, ?) IF NOT EXISTS", [user.email, user.id]);
    if (!claim.wasApplied()) throw new AlreadyExistsError("email");
    await Promise.all([
      this.q("INSERT INTO {ks}.users (id, name, email, created_at) VALUES (?, ?, ?, ?)", [user.id, user.name, user.email, BigInt(user.createdAt)]),
      this.q("INSERT INTO {ks}.user_directory (shard, id) VALUES (?, ?)", [shardOf(user.id), user.id]),
    ]);
  }

  async getUser(id: bigint): Promise<UserRecord | undefined> {
    const row = (await this.q("SELECT * FROM {ks}.users WHERE id = ?", [id])).first();
    return row ? toUser(row) : undefined;
  }

  async listUsers(afterId: bigint, limit: number): Promise<UserRecord[]> {
    const shards = await Promise.all(
      Array.from({ length: USER_SHARDS }, (_, shard) =>
        this.q("SELECT id FROM {ks}.user_directory WHERE shard = ? AND id > ? LIMIT ?", [shard, afterId, limit]),
      ),
    );
    const ids = shards
      .flatMap((r) => r.rows.map((row) => row.get("id") as bigint))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, limit);
    const users = await Promise.all(ids.map((id) => this.getUser(id)));
    return users.filter((u): u is UserRecord => u !== undefined);
  }

  private writeChannel(c: ChannelRecord) {
    return this.q(
      "INSERT INTO {ks}.channels (id, kind, name, visibility, delivery, topic, created_by, created_at, direct_user_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [c.id, c.kind, c.name, c.visibility, c.delivery, c.topic, c.createdBy, BigInt(c.createdAt), c.directUserIds],
    );
  }

  private writeMembership(m: MembershipRecord) {
    const values = [m.channelId, m.userId, m.role, m.isStar, m.isFavorite, m.mute, m.preferences, BigInt(m.joinedAt)];
    const columns = "(channel_id, user_id, role, is_star, is_favorite, mute, preferences, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    return Promise.all([
      this.q(`INSERT INTO {ks}.memberships_by_channel ${columns}`, values),
      this.q(`INSERT INTO {ks}.memberships_by_user ${columns}`, values),
    ]);
  }

  async createGroupChannel(channel: ChannelRecord, owner: MembershipRecord): Promise<void> {
    const claim = await this.q("INSERT INTO {ks}.channel_names (name, channel_id) VALUES (?, ?) IF NOT EXISTS", [channel.name, channel.id]);
    if (!claim.wasApplied()) throw new AlreadyExistsError("name");
    await this.writeChannel(channel);
    await this.writeMembership(owner);
  }

  async getChannel(id: bigint): Promise<ChannelRecord | undefined> {
    const row = (await this.q("SELECT * FROM {ks}.channels WHERE id = ?", [id])).first();
    return row ? toChannel(row) : undefined;
  }

  async updateChannel(id: bigint, changes: ChannelChanges): Promise<ChannelRecord> {
    const current = await this.getChannel(id);
    if (!current) throw new NotFoundError("channel");
    const next = { ...current, ...(changes.topic !== undefined && { topic: changes.topic }) };
    if (changes.name !== undefined && changes.name !== current.name) {
      const claim = await this.q("INSERT INTO {ks}.channel_names (name, channel_id) VALUES (?, ?) IF NOT EXISTS", [changes.name, id]);
      if (!claim.wasApplied()) throw new AlreadyExistsError("name");
      next.name = changes.name;
      await this.q("UPDATE {ks}.channels SET name = ?, topic = ? WHERE id = ?", [next.name, next.topic, id]);
      await this.q("DELETE FROM {ks}.channel_names WHERE name = ? IF channel_id = ?", [current.name, id]);
    } else {
      await this.q("UPDATE {ks}.channels SET topic = ? WHERE id = ?", [next.topic, id]);
    }
    return next;
  }

  async openDirectChannel(
    channel: ChannelRecord,
    members: readonly [MembershipRecord, MembershipRecord],
  ): Promise<{ channel: ChannelRecord; created: boolean }> {
    const [a, b] = channel.directUserIds;
    const pair = `${a}:${b}`;
    // The candidate is written whole before the pair is claimed, so that a
    // caller who loses the race finds the winner's channel complete.
    await this.writeChannel(channel);
    await Promise.all(members.map((m) => this.writeMembership(m)));
    const claim = await this.q("INSERT INTO {ks}.direct_pairs (pair, channel_id) VALUES (?, ?) IF NOT EXISTS", [pair, channel.id]);
    if (claim.wasApplied()) return { channel, created: true };
    const winnerId = claim.first().get("channel_id") as bigint;
    await Promise.all([
      this.q("DELETE FROM {ks}.channels WHERE id = ?", [channel.id]),
      ...members.flatMap((m) => [
        this.q("DELETE FROM {ks}.memberships_by_channel WHERE channel_id = ? AND user_id = ?", [channel.id, m.userId]),
        this.q("DELETE FROM {ks}.memberships_by_user WHERE user_id = ? AND channel_id = ?", [m.userId, channel.id]),
      ]),
    ]);
    const winner = await this.getChannel(winnerId);
    if (!winner) throw new Error(`direct pair ${pair} points at missing channel ${winnerId}`);
    return { channel: winner, created: false };
  }

  async getMembership(channelId: bigint, userId: bigint): Promise<MembershipRecord | undefined> {
    const row = (await this.q("SELECT * FROM {ks}.memberships_by_channel WHERE channel_id = ? AND user_id = ?", [channelId, userId])).first();
    return row ? toMembership(row) : undefined;
  }

  async addMembership(m: MembershipRecord): Promise<{ membership: MembershipRecord; created: boolean }> {
    const claim = await this.q(
      "INSERT INTO {ks}.memberships_by_channel (channel_id, user_id, role, is_star, is_favorite, mute, preferences, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
      [m.channelId, m.userId, m.role, m.isStar, m.isFavorite, m.mute, m.preferences, BigInt(m.joinedAt)],
    );
    if (!claim.wasApplied()) return { membership: toMembership(claim.first()), created: false };
    await this.q(
      "INSERT INTO {ks}.memberships_by_user (channel_id, user_id, role, is_star, is_favorite, mute, preferences, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      [m.channelId, m.userId, m.role, m.isStar, m.isFavorite, m.mute, m.preferences, BigInt(m.joinedAt)],
    );
    return { membership: m, created: true };
  }

  async removeMembership(channelId: bigint, userId: bigint): Promise<boolean> {
    const removed = await this.q("DELETE FROM {ks}.memberships_by_channel WHERE channel_id = ? AND user_id = ? IF EXISTS", [channelId, userId]);
    if (!removed.wasApplied()) return false;
    await this.q("DELETE FROM {ks}.memberships_by_user WHERE user_id = ? AND channel_id = ?", [userId, channelId]);
    return true;
  }

  async updateMembership(channelId: bigint, userId: bigint, changes: MembershipChanges): Promise<MembershipRecord | undefined> {
    const current = await this.getMembership(channelId, userId);
    if (!current) return undefined;
    const next = applyMembershipChanges(current, changes);
    await this.writeMembership(next);
    return next;
  }

  async listChannelsOfUser(
    userId: bigint,
    afterChannelId: bigint,
    limit: number,
  ): Promise<Array<{ channel: ChannelRecord; membership: MembershipRecord }>> {
    const rows = (await this.q("SELECT * FROM {ks}.memberships_by_user WHERE user_id = ? AND channel_id > ? LIMIT ?", [userId, afterChannelId, limit])).rows;
    const pairs = await Promise.all(
      rows.map(async (r) => {
        const membership = toMembership(r);
        const channel = await this.getChannel(membership.channelId);
        return channel ? { channel, membership } : undefined;
      }),
    );
    return pairs.filter((p): p is { channel: ChannelRecord; membership: MembershipRecord } => p !== undefined);
  }

  async listMembers(channelId: bigint, afterUserId: bigint, limit: number): Promise<MembershipRecord[]> {
    const rows = (await this.q("SELECT * FROM {ks}.memberships_by_channel WHERE channel_id = ? AND user_id > ? LIMIT ?", [channelId, afterUserId, limit])).rows;
    return rows.map(toMembership);
  }

  appendMessage(message: MessageRecord): Promise<AppendResult> {
    return this.messages.append(message);
  }

  findMessageByClientMsgId(channelId: bigint, senderId: bigint, clientMsgId: string): Promise<StoredMessage | undefined> {
    return this.messages.findByClientMsgId(channelId, senderId, clientMsgId);
  }

  getMessage(channelId: bigint, id: bigint): Promise<StoredMessage | undefined> {
    return this.messages.get(channelId, id);
  }

  getMessages(channelId: bigint, ids: readonly bigint[]): Promise<StoredMessage[]> {
    return this.messages.getMany(channelId, ids);
  }

  listMessages(channelId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    return this.messages.list(channelId, range);
  }

  listThreadReplies(channelId: bigint, rootId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    return this.messages.listThreadReplies(channelId, rootId, range);
  }

  editMessage(edit: MessageEdit): Promise<MessageChange> {
    return this.messages.edit(edit);
  }

  deleteMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    return this.messages.delete(channelId, id, actorId, at);
  }

  addReaction(reaction: ReactionChange, maxEmoji: number): Promise<MessageChange> {
    return this.messages.addReaction(reaction, maxEmoji);
  }

  removeReaction(reaction: ReactionChange): Promise<MessageChange> {
    return this.messages.removeReaction(reaction);
  }

  reactionsOfUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Promise<Array<{ messageId: bigint; emoji: string }>> {
    return this.messages.reactionsOfUser(channelId, userId, fromId, toId);
  }

  pinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number, maxPins: number): Promise<MessageChange> {
    return this.messages.pin(channelId, id, actorId, at, maxPins);
  }

  unpinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    return this.messages.unpin(channelId, id, actorId, at);
  }

  listPins(channelId: bigint): Promise<StoredMessage[]> {
    return this.messages.listPins(channelId);
  }

  async listChanges(channelId: bigint, afterSeq: bigint, limit: number): Promise<{ changes: ChangeRecord[]; firstKeptSeq: bigint }> {
    // No trimming yet: every entry is kept, so the lowest kept seq is always 1.
    return { changes: await this.log.list(channelId, afterSeq, limit), firstKeptSeq: 1n };
  }

  historyRevision(channelId: bigint): Promise<bigint> {
    return this.log.historyRevision(channelId);
  }

  async close(): Promise<void> {
    await this.log.idle();
    clearInterval(this.probe);
    await this.client.shutdown();
  }
}

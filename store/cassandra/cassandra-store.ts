/**
 * The scale-out store on Cassandra (cassandra-driver), satisfying the same
 * ChatStore contract as SQLite. Schema: infra/cassandra/schema/*.cql.
 *
 * Uniqueness (emails, group channel names, direct message pairs, post
 * idempotency keys, memberships) uses lightweight transactions, and only
 * there. Everything else is plain writes at the configured consistency
 * (LOCAL_QUORUM by default) with prepared statements.
 */
import cassandra from "cassandra-driver";
import { LRUCache } from "lru-cache";
import { timestampOfId } from "../../core/ids.js";
import {
  AlreadyExistsError,
  applyMembershipChanges,
  NotFoundError,
  StoreUnavailableError,
  type ChannelChanges,
  type ChannelRecord,
  type ChatStore,
  type MembershipChanges,
  type MembershipRecord,
  type MessageRange,
  type MessageRecord,
  type UserRecord,
} from "../store.js";
import type { CassandraConsistency, SerialConsistency } from "../../core/config.js";
import { applySchema } from "./migrations.js";

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

/** A message's day bucket: its id's millisecond timestamp divided by one day. */
export const BUCKET_MS = 86_400_000;
export const bucketOf = (id: bigint): number => Math.floor(timestampOfId(id) / BUCKET_MS);

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

const toMessage = (r: Row): MessageRecord => ({
  id: r.get("id") as bigint,
  channelId: r.get("channel_id") as bigint,
  senderId: r.get("sender_id") as bigint,
  text: r.get("text") as string,
  clientMsgId: (r.get("client_msg_id") as string | null) ?? "",
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
  // A channel's bucket row is written by its first message of the day; the
  // rest of that day's messages need only their own write.
  private readonly knownBuckets = new LRUCache<string, true>({ max: 200_000 });

  constructor(
    readonly client: cassandra.Client,
    readonly keyspace: string,
  ) {}

  // Every query's text with the keyspace filled in, rendered once: q() runs on every post and read.
  private readonly statements = new Map<string, string>();

  private q(cql: string, params: unknown[] = []) {
    let statement = this.statements.get(cql);
    if (statement === undefined) this.statements.set(cql, (statement = cql.replaceAll("{ks}", this.keyspace)));
    return this.client.execute(statement, params, { prepare: true }).then(this.answered, this.failed);
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

  private async getMessage(channelId: bigint, id: bigint): Promise<MessageRecord | undefined> {
    const row = (await this.q("SELECT * FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND id = ?", [channelId, bucketOf(id), id])).first();
    return row ? toMessage(row) : undefined;
  }

  async appendMessage(m: MessageRecord): Promise<{ message: MessageRecord; duplicate: boolean }> {
    if (m.clientMsgId !== "") {
      const original = await this.claimKey(m);
      if (original) return { message: original, duplicate: true };
    }
    const bucket = bucketOf(m.id);
    const bucketKey = `${m.channelId}:${bucket}`;
    // Plain upserts: writing the same record again (a redelivered write-behind record) changes nothing.
    await Promise.all([
      this.qSoon("INSERT INTO {ks}.messages (channel_id, bucket, id, sender_id, text, client_msg_id) VALUES (?, ?, ?, ?, ?, ?)", [
        m.channelId,
        bucket,
        m.id,
        m.senderId,
        m.text,
        m.clientMsgId === "" ? null : m.clientMsgId,
      ]),
      this.knownBuckets.has(bucketKey)
        ? undefined
        : this.qSoon("INSERT INTO {ks}.message_buckets (channel_id, bucket) VALUES (?, ?)", [m.channelId, bucket]).then(() =>
            this.knownBuckets.set(bucketKey, true),
          ),
    ]);
    return { message: m, duplicate: false };
  }

  /**
   * Claims m's idempotency key for m.id. Returns the original message when
   * another message holds the key, undefined when m may be written (the claim
   * is m's, possibly from an earlier attempt of the same record).
   */
  private async claimKey(m: MessageRecord): Promise<MessageRecord | undefined> {
    const key = [m.channelId, m.senderId, m.clientMsgId];
    const claim = await this.qSoon(
      "INSERT INTO {ks}.message_keys (channel_id, sender_id, client_msg_id, message_id) VALUES (?, ?, ?, ?) IF NOT EXISTS",
      [...key, m.id],
    );
    if (claim.wasApplied()) return undefined;
    let holder = claim.first().get("message_id") as bigint;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (holder === m.id) return undefined;
      // The first writer may still be writing the row: wait for it briefly.
      for (let i = 0; i < 50; i++) {
        const original = await this.getMessage(m.channelId, holder);
        if (original) return original;
        await new Promise((r) => setTimeout(r, 20));
      }
      // Its writer died between the claim and the row (it never answered, so
      // nobody holds that id): take the key over, unless someone else just did.
      const takeover = await this.q(
        "UPDATE {ks}.message_keys SET message_id = ? WHERE channel_id = ? AND sender_id = ? AND client_msg_id = ? IF message_id = ?",
        [m.id, ...key, holder],
      );
      if (takeover.wasApplied()) return undefined;
      holder = takeover.first().get("message_id") as bigint;
    }
    throw new Error(`idempotency key of message ${m.id} keeps moving between writers`);
  }

  async findMessageByClientMsgId(channelId: bigint, senderId: bigint, clientMsgId: string): Promise<MessageRecord | undefined> {
    const key = (
      await this.q("SELECT message_id FROM {ks}.message_keys WHERE channel_id = ? AND sender_id = ? AND client_msg_id = ?", [
        channelId,
        senderId,
        clientMsgId,
      ])
    ).first();
    return key ? this.getMessage(channelId, key.get("message_id") as bigint) : undefined;
  }

  async listMessages(channelId: bigint, range: MessageRange): Promise<MessageRecord[]> {
    const newestFirst = range.order === "newest-first";
    const bucketRows = newestFirst
      ? await this.q("SELECT bucket FROM {ks}.message_buckets WHERE channel_id = ? AND bucket <= ?", [
          channelId,
          range.before === undefined ? 2 ** 31 - 1 : bucketOf(range.before),
        ])
      : await this.q("SELECT bucket FROM {ks}.message_buckets WHERE channel_id = ? AND bucket >= ? ORDER BY bucket ASC", [
          channelId,
          range.after === undefined ? 0 : bucketOf(range.after),
        ]);
    const lowerBound = range.after ?? -1n;
    const upperBound = range.before ?? (1n << 63n) - 1n;
    const out: MessageRecord[] = [];
    for (const row of bucketRows.rows) {
      if (range.after !== undefined && newestFirst && (row.get("bucket") as number) < bucketOf(range.after)) break;
      if (range.before !== undefined && !newestFirst && (row.get("bucket") as number) > bucketOf(range.before)) break;
      const want = range.limit - out.length;
      const page = await this.q(
        `SELECT * FROM {ks}.messages WHERE channel_id = ? AND bucket = ? AND id < ? AND id > ?${newestFirst ? "" : " ORDER BY id ASC"} LIMIT ?`,
        [channelId, row.get("bucket"), upperBound, lowerBound, want],
      );
      out.push(...page.rows.map(toMessage));
      if (out.length >= range.limit) break;
    }
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.probe);
    await this.client.shutdown();
  }
}

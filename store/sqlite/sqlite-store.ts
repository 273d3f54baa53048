/**
 * The embedded store: one SQLite file through better-sqlite3.
 *
 * Durability: every write is on disk before its promise resolves. Commits
 * do not fsync on the main thread; WalSync fdatasyncs the WAL on the thread
 * pool and shares one sync among all waiters. Posts are group-committed too:
 * every message appended within one turn of the event loop shares one
 * transaction, which is what makes many thousands of durable posts per second
 * possible on one disk. Other writes are rare and commit on their own.
 */
import Database from "better-sqlite3";
import path from "node:path";
import {
  AlreadyExistsError,
  applyMembershipChanges,
  NotFoundError,
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
import { ensureDir } from "../../core/data-dir.js";
import { MAX_ID } from "../../core/ids.js";
import { MIGRATIONS } from "./migrations.js";
import { BACKSTOP_AUTOCHECKPOINT_PAGES, CHECKPOINT_INTERVAL_MS, startCheckpointer, type Checkpointer } from "./checkpointer.js";
import { WalSync } from "./wal-sync.js";
import { SqliteConversations, type AppendOutcome } from "./conversations.js";
import { toChannel, toMembership, toStoredMessage, toUser, type Row } from "./rows.js";

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". */
  file: string;
  /** Most messages in one group commit. */
  maxBatch?: number;
  /** Called after each group commit, for metrics. */
  onBatch?: (size: number, seconds: number) => void;
  /** How often the worker thread checkpoints the WAL (default CHECKPOINT_INTERVAL_MS). */
  checkpointIntervalMs?: number;
}

interface PendingAppend {
  message: MessageRecord;
  resolve: (result: AppendResult) => void;
  reject: (err: unknown) => void;
}

export class SchemaTooNewError extends Error {
  override name = "SchemaTooNewError";
}

export function createSqliteStore(options: SqliteStoreOptions): ChatStore {
  if (options.file !== ":memory:") ensureDir(path.dirname(options.file));
  const db = new Database(options.file);
  db.defaultSafeIntegers(true);
  db.pragma("journal_mode = WAL");
  // FULL durability comes from WalSync, off the event loop (see wal-sync.ts).
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = OFF");
  migrate(db);
  if (options.file === ":memory:") return new SqliteStore(db, options, new WalSync(undefined));
  db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
  const checkpointer = startCheckpointer(options.file, options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS, () =>
    db.pragma("wal_autocheckpoint = 1000"),
  );
  return new SqliteStore(db, options, new WalSync(options.file), checkpointer);
}

function migrate(db: Database.Database): void {
  const current = Number(db.pragma("user_version", { simple: true }));
  if (current > MIGRATIONS.length) {
    throw new SchemaTooNewError(
      `database schema version ${current} is newer than this program knows (${MIGRATIONS.length}); refusing to open it`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

const isUniqueViolation = (err: unknown, column: string): boolean =>
  err instanceof Error &&
  (err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE" &&
  err.message.includes(column);

function directKeyOf(channel: ChannelRecord): string {
  const [a, b] = channel.directUserIds;
  if (a === undefined || b === undefined) throw new Error("a direct channel needs two user ids");
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

class SqliteStore implements ChatStore {
  /** A file on this host's disk: it is there as long as the process is. */
  readonly available = true;
  watchAvailability(): () => void {
    return () => {};
  }

  private readonly maxBatch: number;
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;

  private readonly s;
  private readonly conversations: SqliteConversations;

  constructor(
    private readonly db: Database.Database,
    private readonly options: SqliteStoreOptions,
    private readonly wal: WalSync,
    private readonly checkpointer?: Checkpointer,
  ) {
    this.maxBatch = options.maxBatch ?? 512;
    this.conversations = new SqliteConversations(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      insertUser: p("INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)"),
      getUser: p("SELECT * FROM users WHERE id = ?"),
      listUsers: p("SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?"),
      insertChannel: p(
        `INSERT INTO channels (id, kind, name, visibility, delivery, topic, created_by, created_at, direct_key)
         VALUES (@id, @kind, @name, @visibility, @delivery, @topic, @createdBy, @createdAt, @directKey)`,
      ),
      getChannel: p("SELECT * FROM channels WHERE id = ?"),
      getDirectChannel: p("SELECT * FROM channels WHERE direct_key = ?"),
      updateChannel: p("UPDATE channels SET name = coalesce(@name, name), topic = coalesce(@topic, topic) WHERE id = @id"),
      insertMembership: p(
        `INSERT INTO memberships (channel_id, user_id, role, is_star, is_favorite, mute, preferences, joined_at)
         VALUES (@channelId, @userId, @role, @isStar, @isFavorite, @mute, @preferences, @joinedAt)
         ON CONFLICT (channel_id, user_id) DO NOTHING`,
      ),
      getMembership: p("SELECT * FROM memberships WHERE channel_id = ? AND user_id = ?"),
      deleteMembership: p("DELETE FROM memberships WHERE channel_id = ? AND user_id = ?"),
      updateMembership: p(
        `UPDATE memberships SET is_star = @isStar, is_favorite = @isFavorite, mute = @mute, preferences = @preferences
         WHERE channel_id = @channelId AND user_id = @userId`,
      ),
      listChannelsOfUser: p(
        `SELECT c.*, m.channel_id AS m_channel_id, m.user_id AS m_user_id, m.role AS m_role, m.is_star AS m_is_star,
                m.is_favorite AS m_is_favorite, m.mute AS m_mute, m.preferences AS m_preferences, m.joined_at AS m_joined_at
         FROM memberships m JOIN channels c ON c.id = m.channel_id
         WHERE m.user_id = ? AND m.channel_id > ? ORDER BY m.channel_id LIMIT ?`,
      ),
      listMembers: p("SELECT * FROM memberships WHERE channel_id = ? AND user_id > ? ORDER BY user_id LIMIT ?"),
      newestFirst: p("SELECT * FROM messages WHERE channel_id = ? AND in_history = 1 AND id < ? AND id > ? ORDER BY id DESC LIMIT ?"),
      oldestFirst: p("SELECT * FROM messages WHERE channel_id = ? AND in_history = 1 AND id < ? AND id > ? ORDER BY id ASC LIMIT ?"),
      repliesNewestFirst: p(
        "SELECT * FROM messages INDEXED BY messages_thread WHERE channel_id = ? AND thread_root_id = ? AND thread_root_id != 0 AND deleted_at = 0 AND id < ? AND id > ? ORDER BY id DESC LIMIT ?",
      ),
      repliesOldestFirst: p(
        "SELECT * FROM messages INDEXED BY messages_thread WHERE channel_id = ? AND thread_root_id = ? AND thread_root_id != 0 AND deleted_at = 0 AND id < ? AND id > ? ORDER BY id ASC LIMIT ?",
      ),
    };
  }

  async createUser(user: UserRecord): Promise<void> {
    try {
      this.s.insertUser.run(user.id, user.name, user.email, user.createdAt);
    } catch (err) {
      if (isUniqueViolation(err, "users.email")) throw new AlreadyExistsError("email", { cause: err });
      throw err;
    }
    await this.wal.durable();
  }

  async getUser(id: bigint): Promise<UserRecord | undefined> {
    const row = this.s.getUser.get(id) as Row | undefined;
    return row && toUser(row);
  }

  async listUsers(afterId: bigint, limit: number): Promise<UserRecord[]> {
    return (this.s.listUsers.all(afterId, limit) as Row[]).map(toUser);
  }

  async createGroupChannel(channel: ChannelRecord, owner: MembershipRecord): Promise<void> {
    try {
      this.db.transaction(() => {
        this.s.insertChannel.run(this.channelParams(channel, null));
        this.s.insertMembership.run(this.membershipParams(owner));
      })();
    } catch (err) {
      if (isUniqueViolation(err, "channels.name")) throw new AlreadyExistsError("name", { cause: err });
      throw err;
    }
    await this.wal.durable();
  }

  async getChannel(id: bigint): Promise<ChannelRecord | undefined> {
    const row = this.s.getChannel.get(id) as Row | undefined;
    return row && toChannel(row);
  }

  async updateChannel(id: bigint, changes: ChannelChanges): Promise<ChannelRecord> {
    try {
      const info = this.s.updateChannel.run({ id, name: changes.name ?? null, topic: changes.topic ?? null });
      if (info.changes === 0) throw new NotFoundError("channel");
    } catch (err) {
      if (isUniqueViolation(err, "channels.name")) throw new AlreadyExistsError("name", { cause: err });
      throw err;
    }
    await this.wal.durable();
    return toChannel(this.s.getChannel.get(id) as Row);
  }

  async openDirectChannel(
    channel: ChannelRecord,
    members: readonly [MembershipRecord, MembershipRecord],
  ): Promise<{ channel: ChannelRecord; created: boolean }> {
    const key = directKeyOf(channel);
    // One synchronous IMMEDIATE transaction: no other writer (thread or process) interleaves.
    const result = this.db
      .transaction(() => {
        const existing = this.s.getDirectChannel.get(key) as Row | undefined;
        if (existing) return { channel: toChannel(existing), created: false };
        this.s.insertChannel.run(this.channelParams(channel, key));
        for (const m of members) this.s.insertMembership.run(this.membershipParams(m));
        return { channel: toChannel(this.s.getChannel.get(channel.id) as Row), created: true };
      })
      .immediate();
    // Also when it existed: the creating transaction may not be on disk yet.
    await this.wal.durable();
    return result;
  }

  async getMembership(channelId: bigint, userId: bigint): Promise<MembershipRecord | undefined> {
    const row = this.s.getMembership.get(channelId, userId) as Row | undefined;
    return row && toMembership(row);
  }

  async addMembership(membership: MembershipRecord): Promise<{ membership: MembershipRecord; created: boolean }> {
    const info = this.s.insertMembership.run(this.membershipParams(membership));
    const stored = toMembership(this.s.getMembership.get(membership.channelId, membership.userId) as Row);
    await this.wal.durable();
    return { membership: stored, created: info.changes > 0 };
  }

  async removeMembership(channelId: bigint, userId: bigint): Promise<boolean> {
    const removed = this.s.deleteMembership.run(channelId, userId).changes > 0;
    await this.wal.durable();
    return removed;
  }

  async updateMembership(
    channelId: bigint,
    userId: bigint,
    changes: MembershipChanges,
  ): Promise<MembershipRecord | undefined> {
    const updated = this.db
      .transaction(() => {
        const row = this.s.getMembership.get(channelId, userId) as Row | undefined;
        if (!row) return undefined;
        const next = applyMembershipChanges(toMembership(row), changes);
        this.s.updateMembership.run(this.membershipParams(next));
        return next;
      })
      .immediate();
    await this.wal.durable();
    return updated;
  }

  async listChannelsOfUser(
    userId: bigint,
    afterChannelId: bigint,
    limit: number,
  ): Promise<Array<{ channel: ChannelRecord; membership: MembershipRecord }>> {
    const rows = this.s.listChannelsOfUser.all(userId, afterChannelId, limit) as Row[];
    return rows.map((r) => ({ channel: toChannel(r), membership: toMembership(r, "m_") }));
  }

  async listMembers(channelId: bigint, afterUserId: bigint, limit: number): Promise<MembershipRecord[]> {
    return (this.s.listMembers.all(channelId, afterUserId, limit) as Row[]).map((r) => toMembership(r));
  }

  appendMessage(message: MessageRecord): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async findMessageByClientMsgId(channelId: bigint, senderId: bigint, clientMsgId: string): Promise<StoredMessage | undefined> {
    return this.conversations.findByClientMsgId(channelId, senderId, clientMsgId);
  }

  async getMessage(channelId: bigint, id: bigint): Promise<StoredMessage | undefined> {
    return this.conversations.get(channelId, id);
  }

  async getMessages(channelId: bigint, ids: readonly bigint[]): Promise<StoredMessage[]> {
    const found: StoredMessage[] = [];
    for (const id of ids) {
      const m = this.conversations.get(channelId, id);
      if (m) found.push(m);
    }
    return found;
  }

  async listMessages(channelId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    const stmt = range.order === "newest-first" ? this.s.newestFirst : this.s.oldestFirst;
    return (stmt.all(channelId, range.before ?? MAX_ID, range.after ?? -1n, range.limit) as Row[]).map(toStoredMessage);
  }

  async listThreadReplies(channelId: bigint, rootId: bigint, range: MessageRange): Promise<StoredMessage[]> {
    const stmt = range.order === "newest-first" ? this.s.repliesNewestFirst : this.s.repliesOldestFirst;
    return (stmt.all(channelId, rootId, range.before ?? MAX_ID, range.after ?? -1n, range.limit) as Row[]).map(toStoredMessage);
  }

  editMessage(edit: MessageEdit): Promise<MessageChange> {
    return this.change(() => this.conversations.edit(edit));
  }

  deleteMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    return this.change(() => this.conversations.delete(channelId, id, actorId, at));
  }

  addReaction(reaction: ReactionChange, maxEmoji: number): Promise<MessageChange> {
    return this.change(() => this.conversations.addReaction(reaction, maxEmoji));
  }

  removeReaction(reaction: ReactionChange): Promise<MessageChange> {
    return this.change(() => this.conversations.removeReaction(reaction));
  }

  async reactionsOfUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Promise<Array<{ messageId: bigint; emoji: string }>> {
    return this.conversations.reactionsOfUser(channelId, userId, fromId, toId);
  }

  pinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number, maxPins: number): Promise<MessageChange> {
    return this.change(() => this.conversations.pin(channelId, id, actorId, at, maxPins));
  }

  unpinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange> {
    return this.change(() => this.conversations.unpin(channelId, id, actorId, at));
  }

  async listPins(channelId: bigint): Promise<StoredMessage[]> {
    return this.conversations.pins(channelId);
  }

  async listChanges(channelId: bigint, afterSeq: bigint, limit: number): Promise<{ changes: ChangeRecord[]; firstKeptSeq: bigint }> {
    // The embedded log keeps every change.
    return { changes: this.conversations.listChanges(channelId, afterSeq, limit), firstKeptSeq: 1n };
  }

  async historyRevision(channelId: bigint): Promise<bigint> {
    return this.conversations.historyRevision(channelId);
  }

  /** One change in its own IMMEDIATE transaction (no other connection interleaves), answered once it is on disk. */
  private async change(apply: () => MessageChange): Promise<MessageChange> {
    if (this.closed) throw new Error("store is closed");
    const result = this.db.transaction(apply).immediate();
    await this.wal.durable();
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0) this.flush();
    await this.checkpointer?.stop();
    await this.wal.durable();
    this.db.close();
    this.wal.close();
  }

  /** Commits up to maxBatch queued appends in one transaction, then answers them in order. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
    if (this.queue.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (batch.length === 0) return;
    const started = process.hrtime.bigint();
    let results: AppendOutcome[];
    try {
      // IMMEDIATE: another connection to the same file (a second store) cannot slip a write in between.
      results = this.db
        .transaction(() => this.conversations.inGroupCommit(() => batch.map(({ message }) => this.conversations.append(message))))
        .immediate();
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.wal.durable().then(
      () => {
        this.options.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9);
        batch.forEach((p, i) => {
          const outcome = results[i]!;
          if ("error" in outcome) p.reject(outcome.error);
          else p.resolve(outcome);
        });
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }

  private channelParams(c: ChannelRecord, directKey: string | null) {
    return {
      id: c.id,
      kind: c.kind,
      name: c.name,
      visibility: c.visibility,
      delivery: c.delivery,
      topic: c.topic,
      createdBy: c.createdBy,
      createdAt: c.createdAt,
      directKey,
    };
  }

  private membershipParams(m: MembershipRecord) {
    return {
      channelId: m.channelId,
      userId: m.userId,
      role: m.role,
      isStar: m.isStar ? 1 : 0,
      isFavorite: m.isFavorite ? 1 : 0,
      mute: m.mute ? 1 : 0,
      preferences: JSON.stringify(m.preferences),
      joinedAt: m.joinedAt,
    };
  }
}

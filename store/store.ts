/**
 * The storage boundary. Services speak only this interface; SQLite (embedded
 * default) and Cassandra (scale-out) implement it, and one contract suite runs
 * against every implementation. Records are plain data: no SQL, CQL or protobuf
 * leaks through.
 */

export type ChannelKind = "group" | "direct";
export type ChannelVisibility = "public" | "private";
export type DeliveryKind = "persisted" | "fast" | "ephemeral";
export type MemberRoleKind = "owner" | "member";

export interface UserRecord {
  id: bigint;
  name: string;
  /** Lower-cased; unique across users. */
  email: string;
  /** Unix milliseconds. */
  createdAt: number;
}

export interface ChannelRecord {
  id: bigint;
  kind: ChannelKind;
  /** Unique among group channels; empty for direct messages. */
  name: string;
  visibility: ChannelVisibility;
  delivery: DeliveryKind;
  topic: string;
  createdBy: bigint;
  createdAt: number;
  /** Direct messages: the two members, lower id first. */
  directUserIds: bigint[];
}

export interface MembershipRecord {
  channelId: bigint;
  userId: bigint;
  role: MemberRoleKind;
  isStar: boolean;
  isFavorite: boolean;
  mute: boolean;
  preferences: Record<string, string>;
  joinedAt: number;
}

/** Who a text mentions: members by id (<@ID>), and everyone (<!channel>) or everyone online (<!here>). */
export interface Mentions {
  userIds: bigint[];
  channel: boolean;
  here: boolean;
}

export const NO_MENTIONS: Mentions = Object.freeze({ userIds: [], channel: false, here: false }) as Mentions;

/** A message as posted: what appendMessage stores. */
export interface MessageRecord {
  /** Time-ordered id; the creation time is encoded in it. */
  id: bigint;
  channelId: bigint;
  senderId: bigint;
  text: string;
  /** Idempotency key of the sender; empty when the post carried none. */
  clientMsgId: string;
  /** The thread root it replies to (a root of the same channel, never a reply); 0n or absent for none. */
  threadRootId?: bigint;
  /** A reply that is also listed in the channel's history. */
  alsoToChannel?: boolean;
  /** Absent: none. */
  mentions?: Mentions;
}

/** A thread root's replies, as the root shows them. */
export interface ThreadSummaryRecord {
  /** Replies that are not deleted; the summary is absent when there are none. */
  replyCount: number;
  /** The newest such reply's id (its time is in it). */
  latestReplyId: bigint;
  /** Up to MAX_RECENT_REPLIERS senders of replies, most recent first, without repeats. */
  recentReplierIds: bigint[];
}

/** One emoji's reactions on a message. */
export interface ReactionSummary {
  emoji: string;
  count: number;
  /** The first REACTION_SAMPLE_USERS users who reacted with it, in the order they did. */
  userIds: bigint[];
}

export const MAX_RECENT_REPLIERS = 5;
export const REACTION_SAMPLE_USERS = 3;

/** A stored message as it is now. */
export interface StoredMessage extends Required<MessageRecord> {
  /** Unix ms of the last edit; 0 if never. */
  editedAt: number;
  /**
   * Unix ms of the deletion; 0 if not deleted. A deleted message keeps no
   * text, mentions, reactions or pin; it is listed (as a tombstone) only
   * while it is a thread root with replies.
   */
  deletedAt: number;
  /** On a root with replies that are not deleted. */
  thread: ThreadSummaryRecord | undefined;
  /** In the order each emoji was first used. */
  reactions: ReactionSummary[];
  /** Unix ms; 0 if not pinned. */
  pinnedAt: number;
  /** 0n if not pinned. */
  pinnedBy: bigint;
}

/**
 * What changed, as a channel's change log keeps it. Entries name what
 * changed, not its content: replaying one shows the message as it is now,
 * so a deleted text is never replayed.
 */
export type ChangeKind =
  | "posted"
  | "edited"
  | "deleted"
  | "reaction_added"
  | "reaction_removed"
  | "thread_updated"
  | "pinned"
  | "unpinned";

export interface ChangeRecord {
  channelId: bigint;
  /**
   * The channel's change sequence: 1, 2, 3, ... with no gaps and no repeats,
   * across every API node; a change is visible to readers in this order
   * (nobody can read seq n + 1 before seq n exists).
   */
  seq: bigint;
  kind: ChangeKind;
  /** The message changed; for thread_updated, the thread's root. */
  messageId: bigint;
  /** Who made the change (for thread_updated, who posted or deleted the reply that changed it). */
  actorId: bigint;
  /** The reaction's emoji; "" for other kinds. */
  emoji: string;
  /** Unix ms. */
  at: number;
}

/** What a change operation did: the message now, and the changes it logged (none when it changed nothing). */
export interface MessageChange {
  message: StoredMessage;
  changes: ChangeRecord[];
}

export interface ChannelChanges {
  name?: string;
  topic?: string;
}

export interface MembershipChanges {
  isStar?: boolean;
  isFavorite?: boolean;
  mute?: boolean;
  /** Keys to set; a null value removes the key. */
  preferences?: Record<string, string | null>;
}

/** A membership after partial changes: flags that are set replace, preferences merge (null removes a key). */
export function applyMembershipChanges(current: MembershipRecord, changes: MembershipChanges): MembershipRecord {
  const preferences = { ...current.preferences };
  for (const [key, value] of Object.entries(changes.preferences ?? {})) {
    if (value === null) delete preferences[key];
    else preferences[key] = value;
  }
  return {
    ...current,
    isStar: changes.isStar ?? current.isStar,
    isFavorite: changes.isFavorite ?? current.isFavorite,
    mute: changes.mute ?? current.mute,
    preferences,
  };
}

export interface MessageRange {
  /** Exclusive upper bound on ids, if any. */
  before?: bigint;
  /** Exclusive lower bound on ids, if any. */
  after?: bigint;
  limit: number;
  order: "newest-first" | "oldest-first";
}

export interface AppendResult {
  message: StoredMessage;
  duplicate: boolean;
  /** "posted", then "thread_updated" for a reply; none for a duplicate. */
  changes: ChangeRecord[];
  /** A reply's root after the reply. */
  root?: StoredMessage;
}

export interface MessageEdit {
  channelId: bigint;
  id: bigint;
  /** Only the sender's own message is edited. */
  senderId: bigint;
  text: string;
  mentions: Mentions;
  at: number;
}

export interface ReactionChange {
  channelId: bigint;
  messageId: bigint;
  userId: bigint;
  emoji: string;
  at: number;
}

export interface ChatStore {
  /** Throws AlreadyExistsError("email") when the email is taken. */
  createUser(user: UserRecord): Promise<void>;
  getUser(id: bigint): Promise<UserRecord | undefined>;
  /** Users with id above afterId, in id order. */
  listUsers(afterId: bigint, limit: number): Promise<UserRecord[]>;

  /** Creates a group channel with its owner. Throws AlreadyExistsError("name"). */
  createGroupChannel(channel: ChannelRecord, owner: MembershipRecord): Promise<void>;
  getChannel(id: bigint): Promise<ChannelRecord | undefined>;
  /** Throws NotFoundError("channel") and AlreadyExistsError("name"). */
  updateChannel(id: bigint, changes: ChannelChanges): Promise<ChannelRecord>;
  /**
   * Creates the direct message channel of channel.directUserIds with both
   * memberships, unless the pair has one already: then returns that one.
   * Exactly one channel per pair, also under concurrent calls from any node.
   */
  openDirectChannel(
    channel: ChannelRecord,
    members: readonly [MembershipRecord, MembershipRecord],
  ): Promise<{ channel: ChannelRecord; created: boolean }>;

  getMembership(channelId: bigint, userId: bigint): Promise<MembershipRecord | undefined>;
  /** Adds a membership unless one exists; returns the one that is stored. */
  addMembership(membership: MembershipRecord): Promise<{ membership: MembershipRecord; created: boolean }>;
  /** Returns false when there was no such membership. */
  removeMembership(channelId: bigint, userId: bigint): Promise<boolean>;
  /** Returns undefined when there is no such membership. */
  updateMembership(
    channelId: bigint,
    userId: bigint,
    changes: MembershipChanges,
  ): Promise<MembershipRecord | undefined>;
  /** The user's channels with channel id above afterChannelId, in channel id order. */
  listChannelsOfUser(
    userId: bigint,
    afterChannelId: bigint,
    limit: number,
  ): Promise<Array<{ channel: ChannelRecord; membership: MembershipRecord }>>;
  /** The channel's members with user id above afterUserId, in user id order. */
  listMembers(channelId: bigint, afterUserId: bigint, limit: number): Promise<MembershipRecord[]>;

  /**
   * Stores a message durably and logs its "posted" change; a reply also
   * updates its root's thread summary and logs "thread_updated" for the
   * root (after "posted"). Throws NotFoundError("thread_root_id") when the
   * root is not a message of the channel (a deleted root is fine: it stays
   * as a tombstone).
   *
   * When the message carries a clientMsgId already stored for the same
   * channel and sender, stores nothing and returns the original with
   * duplicate = true and no changes. Appending the same record (same id)
   * again is done, not a duplicate: it stores and logs nothing new and
   * returns what was logged the first time (a write-behind log redelivers).
   */
  appendMessage(message: MessageRecord): Promise<AppendResult>;
  findMessageByClientMsgId(
    channelId: bigint,
    senderId: bigint,
    clientMsgId: string,
  ): Promise<StoredMessage | undefined>;
  /** The message, deleted or not; undefined if the channel has no such message. */
  getMessage(channelId: bigint, id: bigint): Promise<StoredMessage | undefined>;
  /** The messages of the channel with these ids that exist, in the order of ids. */
  getMessages(channelId: bigint, ids: readonly bigint[]): Promise<StoredMessage[]>;
  /**
   * The channel's history: messages that are not replies, replies sent
   * also to the channel, and deleted roots that still have replies
   * (tombstones). Other deleted messages are left out, so pages stay full.
   */
  listMessages(channelId: bigint, range: MessageRange): Promise<StoredMessage[]>;
  /** One thread's replies that are not deleted (not the root). */
  listThreadReplies(channelId: bigint, rootId: bigint, range: MessageRange): Promise<StoredMessage[]>;

  /**
   * Replaces the text and mentions of a message that is not deleted, sets
   * editedAt and logs "edited". Throws NotFoundError("message") when there
   * is no such message of that sender, or it is deleted. Concurrent edits
   * of one message are applied one after another (from any node): every
   * node reads the same text afterwards.
   */
  editMessage(edit: MessageEdit): Promise<MessageChange>;
  /**
   * Deletes a message that is not deleted yet: drops its text, mentions,
   * reactions and pin, logs "deleted" (and "unpinned" first if it was
   * pinned), and for a reply updates the root's summary and logs
   * "thread_updated". Throws NotFoundError("message") when there is no such
   * message or it is deleted already.
   */
  deleteMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange>;
  /**
   * Adds (user, emoji) to a message that is not deleted and logs
   * "reaction_added"; when that reaction exists already, changes and logs
   * nothing. Throws NotFoundError("message"), and
   * LimitExceededError("reactions") for a new emoji on a message with
   * maxEmoji distinct ones. Counts stay exact under concurrent calls from
   * any number of nodes.
   */
  addReaction(reaction: ReactionChange, maxEmoji: number): Promise<MessageChange>;
  /** Removes (user, emoji) and logs "reaction_removed"; when there is no such reaction, changes nothing. Throws NotFoundError("message"). */
  removeReaction(reaction: ReactionChange): Promise<MessageChange>;
  /** The reactions this user made on the channel's messages with ids in [fromId, toId]. */
  reactionsOfUser(channelId: bigint, userId: bigint, fromId: bigint, toId: bigint): Promise<Array<{ messageId: bigint; emoji: string }>>;
  /**
   * Pins a message that is not deleted and logs "pinned"; a pinned message
   * stays as it is. Throws NotFoundError("message"), and
   * LimitExceededError("pins") when the channel has maxPins pins.
   */
  pinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number, maxPins: number): Promise<MessageChange>;
  /** Unpins and logs "unpinned"; an unpinned message stays as it is. Throws NotFoundError("message"). */
  unpinMessage(channelId: bigint, id: bigint, actorId: bigint, at: number): Promise<MessageChange>;
  /** The channel's pinned messages, most recently pinned first. */
  listPins(channelId: bigint): Promise<StoredMessage[]>;

  /**
   * Up to `limit` changes of the channel with seq above afterSeq, in seq
   * order. `firstKeptSeq` is the lowest seq still kept (1 until the log is
   * trimmed): changes between afterSeq and it are gone.
   */
  listChanges(channelId: bigint, afterSeq: bigint, limit: number): Promise<{ changes: ChangeRecord[]; firstKeptSeq: bigint }>;
  /**
   * The seq of the channel's latest change that can alter a history page
   * already read (every kind but "posted"); 0n if none. History caches
   * compare it to decide whether a page they hold is still true.
   */
  historyRevision(channelId: bigint): Promise<bigint>;

  /**
   * Whether the store answers right now: false from a failure to reach it
   * (StoreUnavailableError) until it answers again. Readiness reports it.
   */
  readonly available: boolean;
  /** Calls listener on each change of `available`; returns the unwatch. */
  watchAvailability(listener: (available: boolean) => void): () => void;

  /** Finishes pending writes, then releases the store. */
  close(): Promise<void>;
}

/** Named store errors; services map them to RPC status codes. */
export class StoreError extends Error {
  override name = "StoreError";
}

export class NotFoundError extends StoreError {
  override name = "NotFoundError";
  constructor(readonly entity: string, options?: ErrorOptions) {
    super(`${entity} not found`, options);
  }
}

/**
 * The store cannot be reached right now (nodes down, timeouts, overload):
 * nothing is known to have happened, and the same request may be retried.
 */
export class StoreUnavailableError extends StoreError {
  override name = "StoreUnavailableError";
}

export class AlreadyExistsError extends StoreError {
  override name = "AlreadyExistsError";
  constructor(readonly field: string, options?: ErrorOptions) {
    super(`${field} already exists`, options);
  }
}

/** A per-channel or per-message limit would be passed (distinct emoji on a message, pins in a channel). */
export class LimitExceededError extends StoreError {
  override name = "LimitExceededError";
  constructor(readonly what: string, readonly limit: number, options?: ErrorOptions) {
    super(`at most ${limit} ${what}`, options);
  }
}

/** A message as stored right after its post, with nothing changed yet. */
export function newStoredMessage(m: MessageRecord): StoredMessage {
  return {
    id: m.id,
    channelId: m.channelId,
    senderId: m.senderId,
    text: m.text,
    clientMsgId: m.clientMsgId,
    threadRootId: m.threadRootId ?? 0n,
    alsoToChannel: m.alsoToChannel ?? false,
    mentions: m.mentions ?? NO_MENTIONS,
    editedAt: 0,
    deletedAt: 0,
    thread: undefined,
    reactions: [],
    pinnedAt: 0,
    pinnedBy: 0n,
  };
}

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

export interface MessageRecord {
  /** Time-ordered id; the creation time is encoded in it. */
  id: bigint;
  channelId: bigint;
  senderId: bigint;
  text: string;
  /** Idempotency key of the sender; empty when the post carried none. */
  clientMsgId: string;
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
   * Stores a message durably. When the message carries a clientMsgId already
   * stored for the same channel and sender, stores nothing and returns the
   * original with duplicate = true.
   */
  appendMessage(message: MessageRecord): Promise<{ message: MessageRecord; duplicate: boolean }>;
  findMessageByClientMsgId(
    channelId: bigint,
    senderId: bigint,
    clientMsgId: string,
  ): Promise<MessageRecord | undefined>;
  listMessages(channelId: bigint, range: MessageRange): Promise<MessageRecord[]>;

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

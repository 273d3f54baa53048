/** Store records to protobuf messages and protobuf enums to store kinds: the one mapping between them. */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  ChannelSchema,
  ChannelType,
  DeliveryMode,
  MemberRole,
  MembershipSchema,
  Visibility,
  type Channel,
  type Membership,
} from "../gen/chat/v1/channel_pb.js";
import {
  MessageSchema,
  ReactionSchema,
  ThreadSummarySchema,
  type Message,
  type Reaction,
  type ThreadSummary,
} from "../gen/chat/v1/message_pb.js";
import { UserSchema, type User } from "../gen/chat/v1/user_pb.js";
import { timestampOfId } from "../core/ids.js";
import type { Principal } from "./auth.js";
import type {
  ChannelRecord,
  ChannelVisibility,
  DeliveryKind,
  MembershipRecord,
  MessageRecord,
  ReactionSummary,
  StoredMessage,
  ThreadSummaryRecord,
  UserRecord,
} from "../store/store.js";

export const ts = (ms: number): Timestamp => timestampFromMs(ms);

/** A user as `viewer` may see them: the email only for the admin and for the user themself. */
export function userToProto(u: UserRecord, viewer: Principal): User {
  const email = viewer.kind === "admin" || viewer.userId === u.id ? u.email : "";
  return create(UserSchema, { id: u.id, name: u.name, email, createdAt: ts(u.createdAt) });
}

const deliveryToProto: Record<DeliveryKind, DeliveryMode> = {
  persisted: DeliveryMode.PERSISTED,
  fast: DeliveryMode.FAST,
  ephemeral: DeliveryMode.EPHEMERAL,
};

export function deliveryFromProto(mode: DeliveryMode): DeliveryKind | undefined {
  switch (mode) {
    case DeliveryMode.UNSPECIFIED:
    case DeliveryMode.PERSISTED:
      return "persisted";
    case DeliveryMode.FAST:
      return "fast";
    case DeliveryMode.EPHEMERAL:
      return "ephemeral";
    default:
      return undefined;
  }
}

export function visibilityFromProto(v: Visibility): ChannelVisibility | undefined {
  switch (v) {
    case Visibility.UNSPECIFIED:
    case Visibility.PUBLIC:
      return "public";
    case Visibility.PRIVATE:
      return "private";
    default:
      return undefined;
  }
}

export function deliveryModeOf(c: ChannelRecord): DeliveryMode {
  return deliveryToProto[c.delivery];
}

export function channelToProto(c: ChannelRecord): Channel {
  return create(ChannelSchema, {
    id: c.id,
    type: c.kind === "group" ? ChannelType.GROUP : ChannelType.DIRECT,
    name: c.name,
    visibility: c.visibility === "public" ? Visibility.PUBLIC : Visibility.PRIVATE,
    delivery: deliveryToProto[c.delivery],
    topic: c.topic,
    createdBy: c.createdBy,
    createdAt: ts(c.createdAt),
    directUserIds: c.directUserIds,
  });
}

export function membershipToProto(m: MembershipRecord): Membership {
  return create(MembershipSchema, {
    channelId: m.channelId,
    userId: m.userId,
    role: m.role === "owner" ? MemberRole.OWNER : MemberRole.MEMBER,
    isStar: m.isStar,
    isFavorite: m.isFavorite,
    mute: m.mute,
    preferences: m.preferences,
    joinedAt: ts(m.joinedAt),
  });
}

/**
 * A message as a viewer sees it. myEmoji: the emoji the viewer reacted with
 * on this message (Reaction.me); absent in broadcast events.
 */
export function messageToProto(m: StoredMessage, myEmoji?: ReadonlySet<string>): Message {
  const deleted = m.deletedAt !== 0;
  return create(MessageSchema, {
    id: m.id,
    channelId: m.channelId,
    senderId: m.senderId,
    // Belt and braces: a deleted message's text never leaves, whatever a store holds.
    text: deleted ? "" : m.text,
    createdAt: ts(timestampOfId(m.id)),
    clientMsgId: m.clientMsgId,
    threadRootId: m.threadRootId,
    alsoToChannel: m.alsoToChannel,
    ...(m.editedAt !== 0 && !deleted && { editedAt: ts(m.editedAt) }),
    deleted,
    ...(m.thread && { thread: threadToProto(m.thread) }),
    reactions: deleted ? [] : m.reactions.map((r) => reactionToProto(r, myEmoji?.has(r.emoji) ?? false)),
    mentionedUserIds: deleted ? [] : m.mentions.userIds,
    mentionsChannel: !deleted && m.mentions.channel,
    mentionsHere: !deleted && m.mentions.here,
    ...(m.pinnedAt !== 0 && !deleted && { pinnedAt: ts(m.pinnedAt), pinnedBy: m.pinnedBy }),
  });
}

/**
 * A message just posted, before anything changed it (only the fields a post
 * sets: this runs once per post); or, if it is a stored one, as it is now.
 */
export function postedToProto(m: MessageRecord | StoredMessage): Message {
  if ("editedAt" in m) return messageToProto(m);
  const mentions = m.mentions;
  return create(MessageSchema, {
    id: m.id,
    channelId: m.channelId,
    senderId: m.senderId,
    text: m.text,
    createdAt: ts(timestampOfId(m.id)),
    clientMsgId: m.clientMsgId,
    ...(m.threadRootId !== undefined && m.threadRootId !== 0n && { threadRootId: m.threadRootId, alsoToChannel: m.alsoToChannel ?? false }),
    ...(mentions && { mentionedUserIds: mentions.userIds, mentionsChannel: mentions.channel, mentionsHere: mentions.here }),
  });
}

export function threadToProto(t: ThreadSummaryRecord): ThreadSummary {
  return create(ThreadSummarySchema, {
    replyCount: t.replyCount,
    latestReplyAt: ts(timestampOfId(t.latestReplyId)),
    recentReplierIds: t.recentReplierIds,
  });
}

export function reactionToProto(r: ReactionSummary, me: boolean): Reaction {
  return create(ReactionSchema, { emoji: r.emoji, count: r.count, me, userIds: r.userIds });
}

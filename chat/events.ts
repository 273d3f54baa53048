/**
 * Publishes every change as a chat.v1.Event: channel events on the channel's
 * subject, and events that change what a user's sockets must receive on that
 * user's subject too. A publish failure never undoes or fails a durable write:
 * it is logged and counted, and clients recover through resume/backfill.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Bus } from "../bus/bus.js";
import type { Subjects } from "../bus/subjects.js";
import type { Logger } from "../core/logger.js";
import type { ApiMetrics } from "../core/metrics.js";
import { EventSchema, type Event } from "../gen/chat/v1/event_pb.js";
import type { Message } from "../gen/chat/v1/message_pb.js";
import type { ChannelRecord, MembershipRecord } from "../store/store.js";
import { channelToProto, deliveryModeOf, membershipToProto, ts } from "./convert.js";

export interface EventPublisher {
  /**
   * Takes the protobuf message so that the post path converts it once, for
   * the answer and the event. seq: the post's place in the channel's change
   * log; 0n when it has none (yet): EPHEMERAL posts, FAST ones ahead of the store.
   */
  messagePosted(channel: ChannelRecord, message: Message, seq: bigint): Promise<void>;
  /** A logged change to a message (change-events.ts made the event), on its channel's subject. */
  messageChanged(event: Event): Promise<void>;
  memberJoined(channel: ChannelRecord, membership: MembershipRecord, byUserId: bigint): Promise<void>;
  memberLeft(channel: ChannelRecord, userId: bigint, byUserId: bigint): Promise<void>;
  channelCreated(channel: ChannelRecord): Promise<void>;
  channelUpdated(channel: ChannelRecord): Promise<void>;
  directMessageOpened(channel: ChannelRecord): Promise<void>;
  membershipUpdated(membership: MembershipRecord): Promise<void>;
}

export interface EventPublisherDeps {
  bus: Bus;
  subjects: Subjects;
  logger: Logger;
  metrics: ApiMetrics;
  now?: () => number;
}

type Payload = NonNullable<MessageInitShape<typeof EventSchema>["payload"]>;

export function createEventPublisher(deps: EventPublisherDeps): EventPublisher {
  const { bus, subjects, logger, metrics } = deps;
  const now = deps.now ?? Date.now;

  const publish = (channelId: bigint, payload: Payload, targets: string[], seq = 0n) =>
    send(create(EventSchema, { at: ts(now()), channelId, seq, payload }), targets);

  const send = async (event: Event, targets: string[]) => {
    const payload = event.payload;
    metrics.eventsPublished.inc({ kind: payload.case ?? "none" });
    for (const subject of targets) {
      try {
        await bus.publish(subject, event);
      } catch (err) {
        logger.error({ err, subject, kind: payload.case }, "event publish failed");
      }
    }
  };

  return {
    messagePosted: (channel, message, seq) =>
      publish(
        channel.id,
        { case: "messagePosted", value: { message, delivery: deliveryModeOf(channel) } },
        [subjects.channel(channel.id)],
        seq,
      ),
    messageChanged: (event) => send(event, [subjects.channel(event.channelId)]),
    // The user's subject last: the gateway subscribes the joiner's sockets on
    // it, so they see the event once (not also through the channel).
    memberJoined: (channel, membership, byUserId) =>
      publish(
        channel.id,
        { case: "memberJoined", value: { membership: membershipToProto(membership), byUserId } },
        [subjects.channel(channel.id), subjects.user(membership.userId)],
      ),
    // The user's subject first: the gateway unsubscribes the leaver's sockets
    // on it, so they see the event once (not also through the channel).
    memberLeft: (channel, userId, byUserId) =>
      publish(channel.id, { case: "memberLeft", value: { userId, byUserId } }, [
        subjects.user(userId),
        subjects.channel(channel.id),
      ]),
    channelCreated: (channel) =>
      publish(channel.id, { case: "channelCreated", value: { channel: channelToProto(channel) } }, [
        subjects.user(channel.createdBy),
      ]),
    channelUpdated: (channel) =>
      publish(channel.id, { case: "channelUpdated", value: { channel: channelToProto(channel) } }, [
        subjects.channel(channel.id),
      ]),
    directMessageOpened: (channel) =>
      publish(
        channel.id,
        { case: "directMessageOpened", value: { channel: channelToProto(channel) } },
        channel.directUserIds.map((id) => subjects.user(id)),
      ),
    membershipUpdated: (membership) =>
      publish(
        membership.channelId,
        { case: "membershipUpdated", value: { membership: membershipToProto(membership) } },
        [subjects.user(membership.userId)],
      ),
  };
}

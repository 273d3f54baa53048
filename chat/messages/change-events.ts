/**
 * A channel's logged changes as chat.v1.Events: the one way a change becomes
 * an event, live (with the message as the change left it) and replayed (with
 * the message as it is now, so a deleted text is never replayed).
 */
import { create } from "@bufbuild/protobuf";
import type { DeliveryMode } from "../../gen/chat/v1/channel_pb.js";
import { EventSchema, type Event } from "../../gen/chat/v1/event_pb.js";
import type { ChangeRecord, ChatStore, StoredMessage } from "../../store/store.js";
import { messageToProto, threadToProto, ts } from "../convert.js";
import type { EventPublisher } from "../events.js";

/**
 * The event of one change. `message` is the changed message (for
 * thread_updated, the root), as it is at the time the event is made;
 * undefined only if the store has lost it.
 */
export function changeEvent(change: ChangeRecord, message: StoredMessage | undefined, delivery: DeliveryMode): Event {
  const base = { at: ts(change.at), channelId: change.channelId, seq: change.seq };
  const id = change.messageId;
  const count = message?.reactions.find((r) => r.emoji === change.emoji)?.count ?? 0;
  switch (change.kind) {
    case "posted":
      return create(EventSchema, { ...base, payload: { case: "messagePosted", value: { ...(message && { message: messageToProto(message) }), delivery } } });
    case "edited":
      return create(EventSchema, { ...base, payload: { case: "messageEdited", value: { ...(message && { message: messageToProto(message) }) } } });
    case "deleted":
      return create(EventSchema, {
        ...base,
        payload: {
          case: "messageDeleted",
          value: {
            messageId: id,
            threadRootId: message?.threadRootId ?? 0n,
            byUserId: change.actorId,
            tombstone: message !== undefined && message.threadRootId === 0n && message.thread !== undefined,
          },
        },
      });
    case "reaction_added":
      return create(EventSchema, { ...base, payload: { case: "reactionAdded", value: { messageId: id, emoji: change.emoji, userId: change.actorId, count } } });
    case "reaction_removed":
      return create(EventSchema, { ...base, payload: { case: "reactionRemoved", value: { messageId: id, emoji: change.emoji, userId: change.actorId, count } } });
    case "thread_updated":
      return create(EventSchema, {
        ...base,
        payload: { case: "threadUpdated", value: { threadRootId: id, ...(message?.thread && { thread: threadToProto(message.thread) }) } },
      });
    case "pinned":
      return create(EventSchema, { ...base, payload: { case: "messagePinned", value: { ...(message && { message: messageToProto(message) }) } } });
    case "unpinned":
      return create(EventSchema, { ...base, payload: { case: "messageUnpinned", value: { messageId: id, byUserId: change.actorId } } });
  }
}

/**
 * Publishes logged changes in their order, each as its event: a
 * thread_updated with the root, every other kind with the changed message,
 * as the change left them.
 */
export async function publishChanges(
  events: EventPublisher,
  delivery: DeliveryMode,
  changes: readonly ChangeRecord[],
  message: StoredMessage | undefined,
  root: StoredMessage | undefined,
): Promise<void> {
  for (const change of changes) await events.messageChanged(changeEvent(change, change.kind === "thread_updated" ? root : message, delivery));
}

export interface ReplayedChanges {
  events: Event[];
  /** The seq the replay reached (afterSeq when nothing followed it). */
  lastSeq: bigint;
  hasMore: boolean;
  /** False when changes after afterSeq are no longer kept. */
  complete: boolean;
}

/** Up to `limit` of the channel's changes after afterSeq, as events showing each message as it is now. */
export async function replayChanges(
  store: ChatStore,
  channelId: bigint,
  afterSeq: bigint,
  limit: number,
  delivery: DeliveryMode,
): Promise<ReplayedChanges> {
  const { changes, firstKeptSeq } = await store.listChanges(channelId, afterSeq, limit + 1);
  const page = changes.slice(0, limit);
  const ids = [...new Set(page.map((c) => c.messageId))];
  const messages = new Map((await store.getMessages(channelId, ids)).map((m) => [m.id, m]));
  return {
    events: page.map((c) => changeEvent(c, messages.get(c.messageId), delivery)),
    lastSeq: page.at(-1)?.seq ?? afterSeq,
    hasMore: changes.length > limit,
    complete: firstKeptSeq <= afterSeq + 1n,
  };
}

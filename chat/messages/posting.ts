/**
 * Posting one message: authorization, idempotency (client_msg_id) and the
 * channel's delivery mode. The WebSocket gateway, unary PostMessage and
 * StreamPostMessages all post through here.
 *
 * Delivery modes:
 * - PERSISTED: durable write, then publish, then answer.
 * - FAST: the write-behind log (store/fast-log.ts) instead of the store;
 *   answer once the log has the record. Members see the message without
 *   waiting for the store (without a client_msg_id, without waiting for the
 *   log either); the sender's answer waits for the log, so an acknowledged
 *   message is never lost. On NATS the log is a JetStream stream: the message
 *   is durable even if this process dies right after delivering, and history
 *   shows it once a writer has stored it (milliseconds later).
 * - EPHEMERAL: publish and answer; never stored (so no threads either).
 *
 * Every stored post takes the next number of its channel's change log
 * (Event.seq), and a reply also logs its root's new thread summary. Where
 * the FAST log is the store itself (embedded), a FAST post is published with
 * its seq once the store has it, like a PERSISTED one; where it reaches the
 * store later (scale-out), members get it at once without a seq (0), and the
 * log numbers it when the write-behind stores it.
 */
import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import { PostMessageResponseSchema, type PostMessageRequest, type PostMessageResponse } from "../../gen/chat/v1/message_pb.js";
import { NO_MENTIONS, type AppendResult, type ChannelRecord, type MessageRecord, type Mentions } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import { deliveryModeOf, postedToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { failedPrecondition } from "../errors.js";
import { invalid, optionalId, optionalShortText, requireId, requireText } from "../validate.js";
import { publishChanges } from "./change-events.js";
import { mentionsIn, parseMentions } from "./mentions.js";
import { PublishOrder } from "./publish-order.js";
import type { StoredMessages } from "./stored-messages.js";
import type { EventPublisher } from "../events.js";
import { DeliveryMode } from "../../gen/chat/v1/channel_pb.js";

export const MAX_TEXT_LENGTH = 40_000;
export const MAX_CLIENT_MSG_ID_LENGTH = 64;
/** How long EPHEMERAL posts' idempotency keys are remembered (they are stored nowhere else). */
const EPHEMERAL_KEYS_TTL_MS = 10 * 60_000;

export type PostRequest = Pick<PostMessageRequest, "channelId" | "text" | "clientMsgId" | "threadRootId" | "alsoToChannel">;

/**
 * Posts one message. onQueued, if given, runs once the message has its id
 * (before it is durable): callers that pipeline posts start the next then.
 */
export type PostMessage = (caller: UserPrincipal, req: PostRequest, onQueued?: () => void) => Promise<PostMessageResponse>;

export function createPosting(
  deps: Pick<ServiceDeps, "store" | "ids" | "events" | "fastLog" | "metrics">,
  access: ChannelAccess,
  stored: StoredMessages,
): PostMessage {
  const { store, ids, events, fastLog, metrics } = deps;
  // Concurrent retries of one post share one outcome instead of racing.
  const inFlight = new Map<string, Promise<PostMessageResponse>>();
  // Events of PERSISTED posts go out in id order even when writes finish out of order.
  const publishOrder = new PublishOrder();
  // EPHEMERAL messages are not stored, so their idempotency keys live here for a while.
  const recentEphemeral = new LRUCache<string, MessageRecord>({ max: 100_000, ttl: EPHEMERAL_KEYS_TTL_MS });

  /**
   * Posts one message. onQueued runs as soon as the message has its id and
   * its write (or publish) is queued, before it is durable: a stream may start
   * its next post then, and ids still follow the stream's order.
   */
  /** The root a reply attaches to: the message itself, or the root of the reply it answers. */
  const threadRootOf = async (channel: ChannelRecord, id: bigint): Promise<bigint> => {
    if (channel.delivery === "ephemeral") throw failedPrecondition("EPHEMERAL channels have no threads: their messages are not stored");
    const target = await stored.find(channel, id);
    if (!target) throw invalid("thread_root_id", `no message ${id} in channel ${channel.id}`);
    const rootId = target.threadRootId === 0n ? target.id : target.threadRootId;
    const root = rootId === target.id ? target : await store.getMessage(channel.id, rootId);
    // A deleted root that still has replies (a tombstone) keeps its thread open.
    if (!root || (root.deletedAt !== 0 && root.thread === undefined)) throw invalid("thread_root_id", `message ${id} was deleted`);
    return rootId;
  };

  const mentionsOf = (channel: ChannelRecord, text: string): Mentions | Promise<Mentions> => {
    const parsed = parseMentions(text);
    if (parsed.userIds.length === 0) return parsed.channel || parsed.here ? parsed : NO_MENTIONS;
    return mentionsIn(text, (userId) => store.getMembership(channel.id, userId).then(Boolean));
  };

  /** The post's events: "posted", and for a reply its root's new summary. */
  const publishPosted = async (channel: ChannelRecord, message: ReturnType<typeof postedToProto>, result: AppendResult | undefined) => {
    const posted = result?.changes[0];
    await events.messagePosted(channel, message, posted?.seq ?? 0n);
    if (result && result.changes.length > 1) await publishChanges(events, deliveryModeOf(channel), result.changes.slice(1), undefined, result.root);
  };

  const post = async (caller: UserPrincipal, req: ValidPost, key: string, onQueued?: () => void) => {
    const { channelId, text, clientMsgId } = req;
    const { channel } = await access.isMember(caller, channelId);
    const threadRootId = req.threadRootId === undefined ? 0n : await threadRootOf(channel, req.threadRootId);
    const found = mentionsOf(channel, text);
    // Most posts mention no one: no extra turn of the event loop for them.
    const mentions = found instanceof Promise ? await found : found;
    // PERSISTED posts need no read first: the store answers a repeated key with the original.
    if (clientMsgId !== "" && channel.delivery !== "persisted") {
      const original =
        channel.delivery === "ephemeral"
          ? recentEphemeral.get(key)
          : await store.findMessageByClientMsgId(channelId, caller.userId, clientMsgId);
      if (original) return create(PostMessageResponseSchema, { message: postedToProto(original), duplicate: true });
    }
    // No await between taking the id and queueing the write or the publish:
    // that keeps each channel's events in id order.
    const record: MessageRecord = {
      id: ids.next(),
      channelId,
      senderId: caller.userId,
      text,
      clientMsgId,
      ...(threadRootId !== 0n && { threadRootId, alsoToChannel: req.alsoToChannel }),
      ...(mentions !== NO_MENTIONS && { mentions }),
    };
    let message = postedToProto(record);
    let duplicate = false;
    switch (channel.delivery) {
      case "persisted":
      case "fast": {
        // PERSISTED: the store's durable write, then the event. FAST: the
        // write-behind log instead of the store. Either way events leave in id
        // order even when writes finish out of order.
        const slot = publishOrder.reserve(channelId);
        const writeStarted = performance.now();
        const writing = channel.delivery === "persisted" ? store.appendMessage(record) : fastLog.append(record);
        // FAST without an idempotency key cannot turn out to repeat an earlier
        // post, so members get it while the log takes it (the log record left
        // first, on the same connection). With a key, the log's verdict comes
        // first, so a retry never shows members a second copy.
        const early = channel.delivery === "fast" && clientMsgId === "" && !fastLog.writesThrough;
        const earlyEvent = message;
        const publishedEarly = early ? publishOrder.publish(channelId, slot, () => publishPosted(channel, earlyEvent, undefined)) : undefined;
        onQueued?.();
        let stored;
        try {
          stored = await writing;
          metrics.messageWriteSeconds.observe({ delivery: channel.delivery }, (performance.now() - writeStarted) / 1000);
        } catch (err) {
          if (!early) publishOrder.skip(channelId, slot);
          throw err;
        }
        if (publishedEarly) {
          await publishedEarly;
          // Written straight to the store after all (the log was away): the
          // sequenced copy now, as the write-behind would have sent it.
          if ("changes" in stored && stored.changes) await publishPosted(channel, earlyEvent, stored as AppendResult);
          break;
        }
        duplicate = stored.duplicate;
        if (duplicate) {
          message = postedToProto(stored.message);
          publishOrder.skip(channelId, slot);
        } else {
          const event = message;
          const result = "changes" in stored && stored.changes ? (stored as AppendResult) : undefined;
          await publishOrder.publish(channelId, slot, () => publishPosted(channel, event, result));
        }
        break;
      }
      case "ephemeral": {
        const published = events.messagePosted(channel, message, 0n);
        onQueued?.();
        await published;
        if (clientMsgId !== "") recentEphemeral.set(key, record);
        break;
      }
    }
    if (!duplicate) metrics.messagesPosted.inc({ delivery: channel.delivery });
    return create(PostMessageResponseSchema, { message, duplicate });
  };

  const postMessage: PostMessage = async (caller, req, onQueued) => {
    const valid = validPost(req);
    const { channelId, clientMsgId } = valid;
    if (clientMsgId === "") return post(caller, valid, "", onQueued);
    const key = `${channelId}:${caller.userId}:${clientMsgId}`;
    const pending = inFlight.get(key);
    if (pending) {
      const first = await pending;
      return create(PostMessageResponseSchema, { message: first.message, duplicate: true });
    }
    const attempt = post(caller, valid, key, onQueued);
    inFlight.set(key, attempt);
    try {
      return await attempt;
    } finally {
      inFlight.delete(key);
    }
  };

  return postMessage;
}

interface ValidPost {
  channelId: bigint;
  text: string;
  clientMsgId: string;
  threadRootId: bigint | undefined;
  alsoToChannel: boolean;
}

function validPost(req: PostRequest): ValidPost {
  const channelId = requireId("channel_id", req.channelId);
  const text = requireText("text", req.text, MAX_TEXT_LENGTH);
  const clientMsgId = optionalShortText("client_msg_id", req.clientMsgId, MAX_CLIENT_MSG_ID_LENGTH);
  const threadRootId = optionalId("thread_root_id", req.threadRootId ?? 0n);
  const alsoToChannel = req.alsoToChannel ?? false;
  if (alsoToChannel && threadRootId === undefined) throw invalid("also_to_channel", "only for a reply: set thread_root_id too");
  return { channelId, text, clientMsgId, threadRootId, alsoToChannel };
}

/**
 * What the FAST write-behind publishes once it has stored a post (scale-out):
 * the post again, now with its seq, and a reply's thread summary. Members
 * got the post at once as a preview; gateways drop this copy where they
 * passed the preview on (bus/seq-order.ts), and deliver it where they missed it.
 */
export function publishStoredFastPost(events: EventPublisher, result: AppendResult): Promise<void> {
  return publishChanges(events, DeliveryMode.FAST, result.changes, result.message, result.root);
}

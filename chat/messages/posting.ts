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
 * - EPHEMERAL: publish and answer; never stored.
 */
import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import { PostMessageResponseSchema, type PostMessageRequest, type PostMessageResponse } from "../../gen/chat/v1/message_pb.js";
import type { MessageRecord } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import { messageToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { optionalShortText, requireId, requireText } from "../validate.js";
import { PublishOrder } from "./publish-order.js";

export const MAX_TEXT_LENGTH = 40_000;
export const MAX_CLIENT_MSG_ID_LENGTH = 64;
/** How long EPHEMERAL posts' idempotency keys are remembered (they are stored nowhere else). */
const EPHEMERAL_KEYS_TTL_MS = 10 * 60_000;

export type PostRequest = Pick<PostMessageRequest, "channelId" | "text" | "clientMsgId">;

/**
 * Posts one message. onQueued, if given, runs once the message has its id
 * (before it is durable): callers that pipeline posts start the next then.
 */
export type PostMessage = (caller: UserPrincipal, req: PostRequest, onQueued?: () => void) => Promise<PostMessageResponse>;

export function createPosting(deps: Pick<ServiceDeps, "store" | "ids" | "events" | "fastLog" | "metrics">, access: ChannelAccess): PostMessage {
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
  const post = async (
    caller: UserPrincipal,
    channelId: bigint,
    text: string,
    clientMsgId: string,
    key: string,
    onQueued?: () => void,
  ) => {
    const { channel } = await access.isMember(caller, channelId);
    // PERSISTED posts need no read first: the store answers a repeated key with the original.
    if (clientMsgId !== "" && channel.delivery !== "persisted") {
      const original =
        channel.delivery === "ephemeral"
          ? recentEphemeral.get(key)
          : await store.findMessageByClientMsgId(channelId, caller.userId, clientMsgId);
      if (original) return create(PostMessageResponseSchema, { message: messageToProto(original), duplicate: true });
    }
    // No await between taking the id and queueing the write or the publish:
    // that keeps each channel's events in id order.
    const record: MessageRecord = { id: ids.next(), channelId, senderId: caller.userId, text, clientMsgId };
    let message = messageToProto(record);
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
        const early = channel.delivery === "fast" && clientMsgId === "";
        const earlyEvent = message;
        const publishedEarly = early ? publishOrder.publish(channelId, slot, () => events.messagePosted(channel, earlyEvent)) : undefined;
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
          break;
        }
        duplicate = stored.duplicate;
        if (duplicate) {
          message = messageToProto(stored.message);
          publishOrder.skip(channelId, slot);
        } else {
          const event = message;
          await publishOrder.publish(channelId, slot, () => events.messagePosted(channel, event));
        }
        break;
      }
      case "ephemeral": {
        const published = events.messagePosted(channel, message);
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
    const channelId = requireId("channel_id", req.channelId);
    const text = requireText("text", req.text, MAX_TEXT_LENGTH);
    const clientMsgId = optionalShortText("client_msg_id", req.clientMsgId, MAX_CLIENT_MSG_ID_LENGTH);
    if (clientMsgId === "") return post(caller, channelId, text, clientMsgId, "", onQueued);
    const key = `${channelId}:${caller.userId}:${clientMsgId}`;
    const pending = inFlight.get(key);
    if (pending) {
      const first = await pending;
      return create(PostMessageResponseSchema, { message: first.message, duplicate: true });
    }
    const attempt = post(caller, channelId, text, clientMsgId, key, onQueued);
    inFlight.set(key, attempt);
    try {
      return await attempt;
    } finally {
      inFlight.delete(key);
    }
  };

  return postMessage;
}

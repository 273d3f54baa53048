/**
 * MessageService: posting and history. The WebSocket gateway posts through
 * this same object, so both paths share authorization, validation,
 * idempotency and delivery semantics.
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
import { Code, ConnectError } from "@connectrpc/connect";
import type { ErrorCode } from "../../gen/chat/v1/error_pb.js";
import {
  ListMessagesResponseSchema,
  MessageOrder,
  PostMessageResponseSchema,
  StreamPostMessagesResponseSchema,
  type StreamPostMessagesRequest,
  type StreamPostMessagesResponse,
  type ListMessagesRequest,
  type ListMessagesResponse,
  type PostMessageRequest,
  type PostMessageResponse,
} from "../../gen/chat/v1/message_pb.js";
import { timestampOfId } from "../../core/ids.js";
import type { MessageRecord } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/channel-service.js";
import { messageToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { toConnectError } from "../errors.js";
import { PublishOrder } from "./publish-order.js";
import { invalid, optionalId, optionalShortText, pageSize, requireId, requireText } from "../validate.js";

export const MAX_TEXT_LENGTH = 40_000;
export const MAX_CLIENT_MSG_ID_LENGTH = 64;
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;
/** Posts of one StreamPostMessages stream started but not yet answered. */
export const MAX_STREAM_IN_FLIGHT = 64;
/**
 * A history page whose upper bound is older than this is treated as
 * immutable: later writes (FAST persistence, clock skew between nodes) land
 * within this window of their id's time.
 */
export const HISTORY_SETTLE_MS = 60_000;
/** Memory for cached immutable history pages, and how long one is kept. */
export const HISTORY_CACHE_BYTES = 64 * 1024 * 1024;
export const HISTORY_CACHE_TTL_MS = 10 * 60_000;

export interface ListMessagesResult {
  response: ListMessagesResponse;
  /** True when the page can never change, so HTTP caches may keep it. */
  immutable: boolean;
}

export interface MessageService {
  /**
   * Posts one message. onQueued, if given, runs once the message has its id
   * (before it is durable): callers that pipeline posts start the next then.
   */
  postMessage(
    caller: UserPrincipal,
    req: Pick<PostMessageRequest, "channelId" | "text" | "clientMsgId">,
    onQueued?: () => void,
  ): Promise<PostMessageResponse>;
  /** Posts each request in turn and answers each, errors included, in order. */
  streamPostMessages(
    caller: UserPrincipal,
    requests: AsyncIterable<StreamPostMessagesRequest>,
  ): AsyncIterable<StreamPostMessagesResponse>;
  listMessages(caller: UserPrincipal, req: ListMessagesRequest): Promise<ListMessagesResult>;
}

export function createMessageService(deps: ServiceDeps, access: ChannelAccess): MessageService {
  const { store, ids, events, fastLog, metrics, now } = deps;
  // Concurrent retries of one post share one outcome instead of racing.
  const inFlight = new Map<string, Promise<PostMessageResponse>>();
  // Events of PERSISTED posts go out in id order even when writes finish out of order.
  const publishOrder = new PublishOrder();
  // EPHEMERAL messages are not stored, so their idempotency keys live here for a while.
  const recentEphemeral = new LRUCache<string, MessageRecord>({ max: 100_000, ttl: 10 * 60_000 });
  // Pages wholly in the past never change, and scroll-back reads the same
  // pages again and again (many members opening the same channel). The TTL
  // bounds how long a page stays wrong if a write ever lands later than
  // HISTORY_SETTLE_MS (FAST writers down for longer than that).
  const pages = new LRUCache<string, ListMessagesResult>({
    maxSize: HISTORY_CACHE_BYTES,
    sizeCalculation: ({ response }) => 256 + response.messages.reduce((n, m) => n + 128 + m.text.length * 2, 0),
    ttl: HISTORY_CACHE_TTL_MS,
  });
  // Identical reads in flight share one store read.
  const reading = new Map<string, Promise<ListMessagesResult>>();

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

  const postMessage = async (
    caller: UserPrincipal,
    req: Pick<PostMessageRequest, "channelId" | "text" | "clientMsgId">,
    onQueued?: () => void,
  ): Promise<PostMessageResponse> => {
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

  return {
    postMessage,

    async *streamPostMessages(caller, requests) {
      // Posts are started in request order, each once the previous one has
      // its id, and answered in request order; their durable writes overlap,
      // so one stream is not limited to one fsync round-trip per post.
      const answers: Array<Promise<StreamPostMessagesResponse>> = [];
      let reading = true;
      let readError: unknown;
      // The reader waits for room, the writer for answers; each wakes the other.
      let wakeReader: (() => void) | undefined;
      let wakeWriter: (() => void) | undefined;
      const wake = (which: "reader" | "writer") => {
        const w = which === "reader" ? wakeReader : wakeWriter;
        if (which === "reader") wakeReader = undefined;
        else wakeWriter = undefined;
        w?.();
      };
      const answer = (req: StreamPostMessagesRequest, onQueued: () => void) =>
        postMessage(caller, req, onQueued).then(
          ({ message, duplicate }) => create(StreamPostMessagesResponseSchema, { clientMsgId: req.clientMsgId, message, duplicate }),
          (err: unknown) => {
            const e = toConnectError(err);
            if (e.code === Code.Internal) deps.logger.error({ err: e.cause ?? err }, "streamed post failed");
            return create(StreamPostMessagesResponseSchema, {
              clientMsgId: req.clientMsgId,
              error: { code: e.code as number as ErrorCode, message: e.rawMessage },
            });
          },
        );
      void (async () => {
        try {
          for await (const req of requests) {
            if (caller.expiresAt !== undefined && caller.expiresAt <= now()) {
              throw new ConnectError("token expired", Code.Unauthenticated);
            }
            while (answers.length >= MAX_STREAM_IN_FLIGHT) await new Promise<void>((r) => (wakeReader = r));
            await new Promise<void>((queued) => {
              answers.push(answer(req, queued).finally(queued));
              wake("writer");
            });
          }
        } catch (err) {
          readError = err;
        } finally {
          reading = false;
          wake("writer");
        }
      })();
      for (;;) {
        const next = answers[0];
        if (next) {
          const response = await next;
          answers.shift();
          wake("reader");
          yield response;
        } else if (reading) {
          await new Promise<void>((r) => (wakeWriter = r));
        } else if (readError !== undefined) {
          throw readError;
        } else {
          return;
        }
      }
    },

    async listMessages(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const limit = pageSize("limit", req.limit, DEFAULT_PAGE, MAX_PAGE);
      const before = optionalId("before", req.before);
      const after = optionalId("after", req.after);
      if (before !== undefined && after !== undefined && before <= after) {
        throw invalid("before", `must be greater than after (${before} <= ${after})`);
      }
      let order: "newest-first" | "oldest-first";
      switch (req.order) {
        case MessageOrder.UNSPECIFIED:
        case MessageOrder.NEWEST_FIRST:
          order = "newest-first";
          break;
        case MessageOrder.OLDEST_FIRST:
          order = "oldest-first";
          break;
        default:
          throw invalid("order", `unknown value ${req.order}`);
      }
      await access.isMember(caller, channelId);
      const key = `${channelId}:${before ?? ""}:${after ?? ""}:${limit}:${order}`;
      const cached = pages.get(key);
      if (cached) {
        metrics.historyReads.inc({ source: "cache" });
        return cached;
      }
      const pending = reading.get(key);
      if (pending) {
        metrics.historyReads.inc({ source: "coalesced" });
        return pending;
      }
      const read = readPage(channelId, before, after, limit, order).finally(() => reading.delete(key));
      reading.set(key, read);
      metrics.historyReads.inc({ source: "store" });
      const result = await read;
      if (result.immutable) pages.set(key, result);
      return result;
    },
  };

  async function readPage(
    channelId: bigint,
    before: bigint | undefined,
    after: bigint | undefined,
    limit: number,
    order: "newest-first" | "oldest-first",
  ): Promise<ListMessagesResult> {
    const rows = await store.listMessages(channelId, {
      ...(before !== undefined && { before }),
      ...(after !== undefined && { after }),
      limit: limit + 1,
      order,
    });
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    const response = create(ListMessagesResponseSchema, {
      messages: page.map(messageToProto),
      nextCursor: page.at(-1)?.id ?? 0n,
      hasMore,
    });
    // Bounded on both sides by the past: nothing can be added to this page any more.
    const upper = order === "newest-first" ? before : hasMore ? page.at(-1)?.id : before;
    const immutable = upper !== undefined && timestampOfId(upper) < now() - HISTORY_SETTLE_MS;
    return { response, immutable };
  }
}

/**
 * StreamPostMessages: many posts on one stream (bots, imports). Posts start
 * in request order, each once the previous one has its id, and are answered
 * in request order; their durable writes overlap, so one stream is not
 * limited to one fsync round trip per post. The answers wait in the same
 * bounded queue the event stream uses (core/async-queue.ts): a client that
 * reads its answers slowly holds back the reading of its requests.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "../../core/async-queue.js";
import type { Logger } from "../../core/logger.js";
import type { ErrorCode } from "../../gen/chat/v1/error_pb.js";
import {
  StreamPostMessagesResponseSchema,
  type StreamPostMessagesRequest,
  type StreamPostMessagesResponse,
} from "../../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "../auth.js";
import { toConnectError } from "../errors.js";
import type { PostMessage } from "./posting.js";

const STOPPED = Symbol("stopped");

/** Answers of one stream started but not yet sent to its client. */
export const MAX_STREAM_IN_FLIGHT = 64;

export interface StreamPostsDeps {
  postMessage: PostMessage;
  logger: Logger;
  now: () => number;
}

export function streamPosts(
  deps: StreamPostsDeps,
  caller: UserPrincipal,
  requests: AsyncIterable<StreamPostMessagesRequest>,
  stop?: AbortSignal,
): AsyncIterable<StreamPostMessagesResponse> {
  const answers = new AsyncQueue<Promise<StreamPostMessagesResponse>>(MAX_STREAM_IN_FLIGHT);
  const answer = (req: StreamPostMessagesRequest, onQueued: () => void) =>
    deps.postMessage(caller, req, onQueued).then(
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
    const iterator = requests[Symbol.asyncIterator]();
    // Waiting for the next request ends when the server drains: the client may be idle.
    let onStop: (() => void) | undefined;
    const stopped = new Promise<typeof STOPPED>((resolve) => {
      onStop = () => resolve(STOPPED);
      if (stop?.aborted) onStop();
      stop?.addEventListener("abort", onStop, { once: true });
    });
    try {
      for (;;) {
        const next = await Promise.race([iterator.next(), stopped]);
        if (next === STOPPED) {
          void iterator.return?.();
          throw new ConnectError("server shutting down: send the rest to another node", Code.Unavailable);
        }
        if (next.done) break;
        const req = next.value;
        if (caller.expiresAt !== undefined && caller.expiresAt <= deps.now()) {
          throw new ConnectError("token expired", Code.Unauthenticated);
        }
        await answers.room();
        if (answers.closed) return; // the client stopped reading: post nothing more
        // The next request is read once this post has its id, so ids follow the stream's order.
        await new Promise<void>((queued) => answers.push(answer(req, queued).finally(queued)));
      }
      answers.end();
    } catch (err) {
      // Answers to the posts already started come first, then the error.
      answers.end(err);
    } finally {
      if (onStop) stop?.removeEventListener("abort", onStop);
    }
  })();
  return (async function* () {
    for await (const next of answers) yield await next;
  })();
}

/**
 * What a socket says and how the gateway answers: the hello that starts its
 * session, then each client frame in order (ping, post, resume), with the
 * frame-size limit, the malformed-frame budget and the post rate limit.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { toConnectError } from "../chat/errors.js";
import type { MessageService } from "../chat/messages/message-service.js";
import type { GatewayConfig } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import type { GatewayMetrics } from "../core/metrics.js";
import type { ErrorCode } from "../gen/chat/v1/error_pb.js";
import type { ClientFrame } from "../gen/chat/v1/frame_pb.js";
import { PostMessageRequestSchema } from "../gen/chat/v1/message_pb.js";
import { DISCONNECT } from "../realtime/disconnect.js";
import { frame } from "../realtime/event-session.js";
import { decodeClientFrame } from "./codec.js";
import type { Connection } from "./connection.js";
import { takePostToken } from "./post-rate.js";

/** Malformed frames a connection may send before it is closed with 1008. */
export const MALFORMED_FRAME_BUDGET = 10;

export interface FrameHandlerOptions {
  config: Pick<GatewayConfig, "maxFrameBytes" | "resumeLimit" | "postsPerSecond" | "postBurst">;
  messages: Pick<MessageService, "postMessage">;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Names this process in hello frames (host/pid). */
  serverId: string;
}

export interface FrameHandler {
  /** Loads the socket's channels, says hello, and goes live (or holds, with ?resume=1). */
  start(c: Connection): void;
  /** One frame from the socket. */
  handle(c: Connection, data: ArrayBuffer, isBinary: boolean): void;
  /** The drain began: posts from now on are answered UNAVAILABLE without being taken. */
  drain(): void;
}

const errorFrame = (code: Code, message: string, clientMsgId = "") =>
  frame({ case: "error", value: { clientMsgId, error: { code: code as number as ErrorCode, message } } });

export function createFrameHandler(options: FrameHandlerOptions): FrameHandler {
  const { config, messages, metrics, logger, serverId } = options;
  const limitsOf = (c: Connection) => (c.limits ??= { malformed: 0, postTokens: config.postBurst, postTokensAt: Date.now(), inFlight: 0 });
  let draining = false;

  const malformed = (c: Connection, err: unknown) => {
    metrics.framesIn.inc({ kind: "malformed" });
    const limits = limitsOf(c);
    limits.malformed++;
    c.send(errorFrame(Code.InvalidArgument, `malformed frame: ${(err as Error).message}`));
    if (limits.malformed > MALFORMED_FRAME_BUDGET) c.close(DISCONNECT.malformed);
  };

  // A post starts once the previous frame is handled, and ends when durable;
  // the next frame may start as soon as this post has its id.
  const post = (c: Connection, p: Extract<ClientFrame["frame"], { case: "post" }>["value"]) => {
    if (draining) {
      c.send(errorFrame(Code.Unavailable, "server shutting down: post again once reconnected", p.clientMsgId));
      return;
    }
    const limits = limitsOf(c);
    if (!takePostToken(limits, Date.now(), config)) {
      c.send(errorFrame(Code.ResourceExhausted, `rate limit: at most ${config.postsPerSecond} posts per second`, p.clientMsgId));
      return;
    }
    // Answered (ack or error) before the drain closes the socket.
    limits.inFlight++;
    const answered = () => limits.inFlight--;
    c.queue = c.queue.then(
      () =>
        new Promise<void>((queued) => {
          if (!c.ws) {
            answered();
            return queued();
          }
          if (c.holdUntil !== 0) {
            c.holdUntil = 0;
            c.session.releaseAll();
          }
          messages
            .postMessage(c.user, create(PostMessageRequestSchema, { channelId: p.channelId, text: p.text, clientMsgId: p.clientMsgId, threadRootId: p.threadRootId, alsoToChannel: p.alsoToChannel }), queued)
            .then(
              ({ message, duplicate }) => c.send(frame({ case: "ack", value: { clientMsgId: p.clientMsgId, message, duplicate } })),
              (err: unknown) => {
                const e = toConnectError(err);
                if (e.code === Code.Internal) logger.error({ err: e.cause ?? err, session: c.id }, "websocket post failed");
                c.send(errorFrame(e.code, e.rawMessage, p.clientMsgId));
              },
            )
            .finally(() => {
              answered();
              queued();
            });
        }),
    );
  };

  return {
    drain() {
      draining = true;
    },

    start(c) {
      const hello = (channelIds: bigint[]) =>
        c.send(
          frame({
            case: "hello",
            value: {
              userId: c.user.userId,
              sessionId: c.id,
              serverTime: timestampFromMs(Date.now()),
              channelIds,
              maxFrameBytes: config.maxFrameBytes,
              resumeLimit: config.resumeLimit,
              serverId,
            },
          }),
        );
      const startup = c.session.start(hello, c.holdUntil !== 0).catch((err: unknown) => {
        if (toConnectError(err).code === Code.Unauthenticated) {
          logger.debug({ session: c.id, user: String(c.user.userId) }, "socket of an unknown user closed");
          c.close(DISCONNECT.unauthenticated);
          return;
        }
        logger.error({ err, session: c.id }, "session start failed");
        c.close(DISCONNECT.startFailed);
      });
      c.queue = startup;
      c.settle(startup);
    },

    handle(c, data, isBinary) {
      metrics.bytesIn.inc(data.byteLength);
      if (data.byteLength > config.maxFrameBytes) {
        metrics.framesIn.inc({ kind: "too big" });
        c.close(DISCONNECT.frameTooBig);
        return;
      }
      let clientFrame: ClientFrame;
      try {
        clientFrame = decodeClientFrame(data, isBinary);
        if (clientFrame.frame.case === undefined) throw new Error("empty frame: set one of post, resume, ping");
      } catch (err) {
        malformed(c, err);
        return;
      }
      const f = clientFrame.frame;
      metrics.framesIn.inc({ kind: f.case });
      switch (f.case) {
        case "ping":
          c.send(frame({ case: "pong", value: { nonce: f.value.nonce, serverTime: timestampFromMs(Date.now()) } }));
          return;
        case "post":
          post(c, f.value);
          return;
        case "resume":
          c.holdUntil = 0;
          c.queue = c.queue.then(() => c.session.resume(f.value.cursors));
          return;
      }
    },
  };
}

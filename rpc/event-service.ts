/**
 * EventService.Subscribe: the WebSocket's live events for bots over gRPC (or
 * Connect streaming), with the same authorization (the user's channels and
 * nothing else) and the same resume semantics (EventSession); and
 * EventService.ListChanges, the change log a client pages through when a
 * resume was cut short.
 */
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { EventEmitter } from "node:events";
import type { Fanout } from "../bus/fanout.js";
import { EventService, SubscribeResponseSchema, type SubscribeResponse } from "../gen/chat/v1/event_service_pb.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { ServerFrame } from "../gen/chat/v1/frame_pb.js";
import type { ListChangesRequest, ListChangesResponse } from "../gen/chat/v1/event_service_pb.js";
import type { UserPrincipal } from "../chat/auth.js";
import { userOf } from "./interceptors.js";
import { AsyncQueue } from "../core/async-queue.js";
import type { EventBackend } from "../realtime/event-backend.js";
import { DISCONNECT, streamEnd } from "../realtime/disconnect.js";
import { EventSession } from "../realtime/event-session.js";

export interface EventServiceOptions {
  backend: EventBackend;
  /** EventService.ListChanges (the message service's replay of a channel's change log). */
  listChanges: (caller: UserPrincipal, req: ListChangesRequest) => Promise<ListChangesResponse>;
  fanout: Fanout;
  resumeLimit: number;
  /** Items queued for a slow stream before it ends with RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /** "reconnect": the bus may have missed events; streams end with UNAVAILABLE so bots resubscribe with cursors. */
  busEvents?: EventEmitter;
  /** Aborts when the server starts draining: every stream ends at once with UNAVAILABLE (reconnect elsewhere). */
  draining?: AbortSignal;
}

export { EventService };

function toItem(f: ServerFrame): SubscribeResponse | undefined {
  switch (f.frame.case) {
    case "event":
      return create(SubscribeResponseSchema, { item: { case: "event", value: f.frame.value } });
    case "resumed":
      return create(SubscribeResponseSchema, { item: { case: "resumed", value: f.frame.value } });
    case "error":
      return create(SubscribeResponseSchema, { item: { case: "error", value: f.frame.value } });
    default:
      return undefined;
  }
}

export function registerEventService(router: ConnectRouter, options: EventServiceOptions): void {
  const { backend, fanout } = options;
  const sessionEnv = { backend, fanout, options: { resumeLimit: options.resumeLimit, maxHeldEvents: options.maxQueued, maxCursors: 10_000 } };
  router.service(EventService, {
    listChanges(req, ctx) {
      const principal = userOf(ctx);
      ctx.responseHeader.set("cache-control", "private, no-cache");
      return options.listChanges(principal, req);
    },
    async *subscribe(req, ctx: HandlerContext) {
      const principal = userOf(ctx);
      const queue = new AsyncQueue<SubscribeResponse>(options.maxQueued, () =>
        streamEnd(DISCONNECT.tooSlow, `more than ${options.maxQueued} events queued`),
      );
      const following = new Map<bigint, (event: Event) => void>();
      const session = new EventSession(
        principal,
        sessionEnv,
        {
          send(f) {
            const item = toItem(f);
            if (item) queue.push(item);
          },
          follow(channelId) {
            if (following.has(channelId)) return;
            const listener = (event: Event) => queue.push(create(SubscribeResponseSchema, { item: { case: "event", value: event } }));
            following.set(channelId, listener);
            fanout.watchChannel(channelId, listener);
          },
          unfollow(channelId) {
            const listener = following.get(channelId);
            if (!listener) return;
            fanout.unwatchChannel(channelId, listener);
            following.delete(channelId);
          },
          overflow: () => queue.fail(streamEnd(DISCONNECT.tooSlow)),
        },
      );
      const expiry =
        principal.expiresAt === undefined
          ? undefined
          : setTimeout(
              () => queue.fail(streamEnd(DISCONNECT.tokenExpired)),
              Math.max(0, principal.expiresAt - Date.now()),
            );
      const onBusReconnect = () => queue.fail(streamEnd(DISCONNECT.resync));
      options.busEvents?.on("reconnect", onBusReconnect);
      const onDrain = () => queue.fail(streamEnd(DISCONNECT.shutdown));
      if (options.draining?.aborted) onDrain();
      options.draining?.addEventListener("abort", onDrain);
      try {
        await session.start(() => undefined, req.cursors.length > 0);
        if (req.cursors.length > 0) {
          session.resume(req.cursors).catch((err: unknown) => queue.fail(err));
        }
        yield* queue.iterate(ctx.signal);
      } finally {
        options.busEvents?.off("reconnect", onBusReconnect);
        options.draining?.removeEventListener("abort", onDrain);
        clearTimeout(expiry);
        session.close();
        queue.end();
      }
    },
  });
}

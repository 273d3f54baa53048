/**
 * The scale-out bus: NATS core subjects carrying binary chat.v1.Event. One
 * NATS subscription per subject with local handlers (the Fanout above keeps
 * that to one per channel or user with local listeners). The client
 * reconnects and resubscribes by itself; onReconnect lets the gateway tell
 * its sockets to resume, since core NATS does not replay what it missed.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, type ConnectionOptions, type NatsConnection, type Subscription as NatsSubscription } from "nats";
import { EventSchema } from "../gen/chat/v1/event_pb.js";
import type { Bus, EventHandler, Subscription } from "./bus.js";

export interface NatsBusOptions {
  /** NATS server URLs, e.g. ["nats://127.0.0.1:4222"]. */
  servers: string[];
  /** Connection name shown by the server's monitoring. */
  name?: string;
  /** Extra nats.js connection options (timeouts, auth, TLS). */
  connection?: Partial<ConnectionOptions>;
  /** Called after the connection came back: events published meanwhile were missed. */
  onReconnect?: () => void;
  onDisconnect?: () => void;
  onHandlerError?: (err: unknown, subject: string) => void;
}

export interface NatsBus extends Bus {
  readonly connection: NatsConnection;
}

export async function createNatsBus(options: NatsBusOptions): Promise<NatsBus> {
  const nc = await connect({
    servers: options.servers,
    name: options.name ?? "chat",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...options.connection,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "reconnect") options.onReconnect?.();
      else if (status.type === "disconnect") options.onDisconnect?.();
    }
  })();

  const subjects = new Map<string, { subscription: NatsSubscription; handlers: Set<EventHandler> }>();

  return {
    connection: nc,
    async publish(subject, event) {
      nc.publish(subject, toBinary(EventSchema, event));
    },
    subscribe(subject, handler): Subscription {
      let entry = subjects.get(subject);
      if (!entry) {
        const handlers = new Set<EventHandler>();
        const subscription = nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err) return options.onHandlerError?.(err, subject);
            let event;
            try {
              event = fromBinary(EventSchema, msg.data);
            } catch (decodeError) {
              return options.onHandlerError?.(decodeError, subject);
            }
            for (const h of [...handlers]) {
              try {
                h(event, subject);
              } catch (handlerError) {
                options.onHandlerError?.(handlerError, subject);
              }
            }
          },
        });
        entry = { subscription, handlers };
        subjects.set(subject, entry);
      }
      const own: EventHandler = (e, s) => handler(e, s);
      entry.handlers.add(own);
      return {
        subject,
        unsubscribe() {
          const current = subjects.get(subject);
          if (!current?.handlers.delete(own) || current.handlers.size > 0) return;
          current.subscription.unsubscribe();
          subjects.delete(subject);
        },
      };
    },
    async close() {
      // Drain: deliver what is in flight, flush what was published, then close.
      if (!nc.isClosed()) await nc.drain();
    },
  };
}

/**
 * The scale-out bus: NATS core subjects carrying binary chat.v1.Event. One
 * NATS subscription per subscribe() (the Fanout above keeps that to one per
 * channel or user with local listeners). The client
 * reconnects and resubscribes by itself; onReconnect lets the gateway tell
 * its sockets to resume, since core NATS does not replay what it missed.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, type ConnectionOptions, type NatsConnection, type Subscription as NatsSubscription } from "nats";
import { EventSchema } from "../gen/chat/v1/event_pb.js";
import type { Bus, Subscription } from "./bus.js";

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

class NatsBusSubscription implements Subscription {
  constructor(
    readonly subject: string,
    private readonly subscription: NatsSubscription,
  ) {}

  unsubscribe(): void {
    if (!this.subscription.isClosed()) this.subscription.unsubscribe();
  }
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

  return {
    connection: nc,
    async publish(subject, event) {
      nc.publish(subject, toBinary(EventSchema, event));
    },
    // One NATS subscription per call, with nothing of ours around it but its
    // callback: the Fanout above already takes one per subject, and a
    // standalone gateway holds one per user with a socket.
    subscribe(subject, handler): Subscription {
      const subscription = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return options.onHandlerError?.(err, subject);
          let event;
          try {
            event = fromBinary(EventSchema, msg.data);
          } catch (decodeError) {
            return options.onHandlerError?.(decodeError, subject);
          }
          try {
            handler(event, subject);
          } catch (handlerError) {
            options.onHandlerError?.(handlerError, subject);
          }
        },
      });
      return new NatsBusSubscription(subject, subscription);
    },
    async close() {
      // Drain: deliver what is in flight, flush what was published, then close.
      if (!nc.isClosed()) await nc.drain();
    },
  };
}

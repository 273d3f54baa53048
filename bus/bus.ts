/**
 * The event bus boundary: in-process (embedded default) and NATS (scale-out)
 * implement it. Payloads are chat.v1.Event; an implementation that crosses
 * processes encodes them as binary protobuf.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";

export type EventHandler = (event: Event, subject: string) => void;

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
}

export interface Bus {
  /**
   * Publishes one event. Events published on one subject from one process are
   * delivered to each subscriber in publish order.
   */
  publish(subject: string, event: Event): Promise<void>;
  /** Subscribes to one exact subject. */
  subscribe(subject: string, handler: EventHandler): Subscription;
  /** Delivers what is pending, then stops. */
  close(): Promise<void>;
}

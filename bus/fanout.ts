/**
 * Interest-based subscriptions for the consumers in one process (WebSocket
 * gateway, gRPC event streams): one bus subscription per channel or user
 * subject that has at least one local listener, taken with the first listener
 * and dropped with the last. Listeners of a subject are called in the order
 * the bus delivers, so every listener sees one channel's events in order.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { Bus, Subscription } from "./bus.js";
import type { Subjects } from "./subjects.js";

export type EventListener = (event: Event) => void;

/**
 * Listeners are added and removed by identity (no wrapper or release closure
 * per registration: a gateway holds one per socket, tens of thousands).
 * Register one function object once per subject.
 */
export interface Fanout {
  /** Calls listener for every event of the channel until unwatchChannel. */
  watchChannel(channelId: bigint, listener: EventListener): void;
  unwatchChannel(channelId: bigint, listener: EventListener): void;
  /** Calls listener for every event addressed to the user until unwatchUser. */
  watchUser(userId: bigint, listener: EventListener): void;
  unwatchUser(userId: bigint, listener: EventListener): void;
  /** Bus subscriptions held right now (for metrics and tests). */
  readonly subscriptionCount: number;
}

export interface FanoutOptions {
  onListenerError?: (err: unknown) => void;
}

export function createFanout(bus: Bus, subjects: Subjects, options: FanoutOptions = {}): Fanout {
  const entries = new Map<string, { subscription: Subscription; listeners: Set<EventListener> }>();

  const watch = (subject: string, listener: EventListener): void => {
    let entry = entries.get(subject);
    if (!entry) {
      const listeners = new Set<EventListener>();
      const subscription = bus.subscribe(subject, (event) => {
        for (const l of [...listeners]) {
          try {
            l(event);
          } catch (err) {
            options.onListenerError?.(err);
          }
        }
      });
      entry = { subscription, listeners };
      entries.set(subject, entry);
    }
    entry.listeners.add(listener);
  };

  const unwatch = (subject: string, listener: EventListener): void => {
    const entry = entries.get(subject);
    if (!entry || !entry.listeners.delete(listener)) return;
    if (entry.listeners.size === 0) {
      entry.subscription.unsubscribe();
      entries.delete(subject);
    }
  };

  return {
    watchChannel: (channelId, listener) => watch(subjects.channel(channelId), listener),
    unwatchChannel: (channelId, listener) => unwatch(subjects.channel(channelId), listener),
    watchUser: (userId, listener) => watch(subjects.user(userId), listener),
    unwatchUser: (userId, listener) => unwatch(subjects.user(userId), listener),
    get subscriptionCount() {
      return entries.size;
    },
  };
}

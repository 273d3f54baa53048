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

export interface Fanout {
  /** Calls listener for every event of the channel until the returned function is called. */
  watchChannel(channelId: bigint, listener: EventListener): () => void;
  /** Calls listener for every event addressed to the user until the returned function is called. */
  watchUser(userId: bigint, listener: EventListener): () => void;
  /** Bus subscriptions held right now (for metrics and tests). */
  readonly subscriptionCount: number;
}

export interface FanoutOptions {
  onListenerError?: (err: unknown) => void;
}

export function createFanout(bus: Bus, subjects: Subjects, options: FanoutOptions = {}): Fanout {
  const entries = new Map<string, { subscription: Subscription; listeners: Set<EventListener> }>();

  const watch = (subject: string, listener: EventListener): (() => void) => {
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
    const { listeners } = entry;
    // Wrapped, so one function can be registered twice and released once.
    const own: EventListener = (event) => listener(event);
    listeners.add(own);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      listeners.delete(own);
      const current = entries.get(subject);
      if (current && current.listeners.size === 0) {
        current.subscription.unsubscribe();
        entries.delete(subject);
      }
    };
  };

  return {
    watchChannel: (channelId, listener) => watch(subjects.channel(channelId), listener),
    watchUser: (userId, listener) => watch(subjects.user(userId), listener),
    get subscriptionCount() {
      return entries.size;
    },
  };
}

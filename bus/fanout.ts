/**
 * Interest-based subscriptions for the consumers in one process (WebSocket
 * gateway, gRPC event streams): one bus subscription per channel or user
 * subject that has at least one local listener, taken with the first listener
 * and dropped with the last. Listeners of a subject are called in the order
 * the bus delivers, so every listener sees one channel's events in order.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { Bus, Subscription } from "./bus.js";
import { forEachMember, withMember, withoutMember, type OneOrMany } from "./one-or-many.js";
import type { Subjects } from "./subjects.js";

/**
 * A function, or an object whose handleEvent is called (as with DOM event
 * listeners): an object that already exists per socket, such as a session,
 * listens without a closure of its own.
 */
export type EventListener = ((event: Event) => void) | { handleEvent(event: Event): void };

/**
 * Listeners are added and removed by identity (no wrapper or release closure
 * per registration: a gateway holds one per socket, tens of thousands).
 * Register one listener once per subject.
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

/** A subject's listeners (most subjects, a user's in a gateway process, have one). */
export type Listeners = OneOrMany<EventListener>;

/** Calls every listener; one that throws does not keep the event from the others. */
export function callListeners(listeners: Listeners, event: Event, onError?: (err: unknown) => void): void {
  forEachMember(listeners, (listener) => {
    try {
      if (typeof listener === "function") listener(event);
      else listener.handleEvent(event);
    } catch (err) {
      onError?.(err);
    }
  });
}

export function createFanout(bus: Bus, subjects: Subjects, options: FanoutOptions = {}): Fanout {
  const entries = new Map<string, { subscription: Subscription; listeners: Listeners }>();

  // One bus handler for every subject, which finds the subject's listeners:
  // no closure per subscription (a gateway holds one per local user).
  const deliver = (event: Event, subject: string) => {
    const entry = entries.get(subject);
    if (entry) callListeners(entry.listeners, event, options.onListenerError);
  };

  const watch = (subject: string, listener: EventListener): void => {
    const entry = entries.get(subject);
    if (entry) entry.listeners = withMember(entry.listeners, listener);
    else entries.set(subject, { subscription: bus.subscribe(subject, deliver), listeners: listener });
  };

  const unwatch = (subject: string, listener: EventListener): void => {
    const entry = entries.get(subject);
    if (!entry) return;
    const rest = withoutMember(entry.listeners, listener);
    if (rest !== undefined) {
      entry.listeners = rest;
      return;
    }
    entry.subscription.unsubscribe();
    entries.delete(subject);
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

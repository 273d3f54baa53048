/**
 * Interest-based subscriptions for the consumers in one process (WebSocket
 * gateway, gRPC event streams): one bus subscription per channel or user
 * subject that has at least one local listener, taken with the first listener
 * and dropped with the last. Listeners of a subject are called in the order
 * the bus delivers, with each channel's logged changes put in seq order
 * first (seq-order.ts), so every listener sees one channel's events in order.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { Bus } from "./bus.js";
import { forEachMember, type OneOrMany } from "./one-or-many.js";
import { SeqOrder } from "./seq-order.js";
import { createSubjectInterest } from "./subject-interest.js";
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
  // One bus handler for every subject, which finds the subject's listeners:
  // no closure per subscription (a gateway holds one per local user).
  const deliver = (event: Event, subject: string) => {
    const listeners = interest.membersOf(subject);
    if (listeners) callListeners(listeners, event, options.onListenerError);
  };
  const order = new SeqOrder(deliver);
  const interest = createSubjectInterest<EventListener>(bus, (event, subject) => order.offer(event, subject));

  return {
    watchChannel: (channelId, listener) => interest.add(subjects.channel(channelId), listener),
    unwatchChannel: (channelId, listener) => {
      const subject = subjects.channel(channelId);
      interest.remove(subject, listener);
      if (interest.membersOf(subject) === undefined) order.forget(subject);
    },
    watchUser: (userId, listener) => interest.add(subjects.user(userId), listener),
    unwatchUser: (userId, listener) => interest.remove(subjects.user(userId), listener),
    get subscriptionCount() {
      return interest.size;
    },
  };
}

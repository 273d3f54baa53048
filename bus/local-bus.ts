/**
 * The in-process bus of the single-node mode: subscribers in this process
 * receive events without encoding. Delivery is asynchronous (a microtask), as
 * with a networked bus, so a publisher never runs subscriber code inline.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { Bus, EventHandler, Subscription } from "./bus.js";
import { forEachMember, withMember, withoutMember, type OneOrMany } from "./one-or-many.js";

export interface LocalBusOptions {
  /** Called when a subscriber throws; the bus keeps delivering to the others. */
  onHandlerError?: (err: unknown, subject: string) => void;
}

export function createLocalBus(options: LocalBusOptions = {}): Bus {
  /**
   * Per subject, its subscriptions (a publish keeps the ones of its moment).
   * A process with gateway workers holds one per user with a socket: no Set
   * or closure per subscription.
   */
  const subscribers = new Map<string, OneOrMany<LocalSubscription>>();
  let closed = false;

  class LocalSubscription implements Subscription {
    constructor(
      readonly subject: string,
      readonly handler: EventHandler,
    ) {}

    unsubscribe(): void {
      const current = subscribers.get(this.subject);
      if (current === undefined) return;
      const rest = withoutMember(current, this);
      if (rest === undefined) subscribers.delete(this.subject);
      else subscribers.set(this.subject, rest);
    }
  }

  const call = (target: LocalSubscription, subject: string, event: Event) => {
    try {
      target.handler(event, subject);
    } catch (err) {
      options.onHandlerError?.(err, subject);
    }
  };

  return {
    async publish(subject, event) {
      if (closed) throw new Error("bus is closed");
      const targets = subscribers.get(subject);
      if (targets === undefined) return;
      queueMicrotask(() => forEachMember(targets, (target) => call(target, subject, event)));
    },
    subscribe(subject, handler): Subscription {
      // One object per call: the same function may be subscribed twice and removed once.
      const subscription = new LocalSubscription(subject, handler);
      const current = subscribers.get(subject);
      subscribers.set(subject, current === undefined ? subscription : withMember(current, subscription));
      return subscription;
    },
    async close() {
      closed = true;
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      subscribers.clear();
    },
  };
}

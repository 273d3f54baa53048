/**
 * The in-process bus of the single-node mode: subscribers in this process
 * receive events without encoding. Delivery is asynchronous (a microtask), as
 * with a networked bus, so a publisher never runs subscriber code inline.
 */
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { Bus, EventHandler, Subscription } from "./bus.js";

export interface LocalBusOptions {
  /** Called when a subscriber throws; the bus keeps delivering to the others. */
  onHandlerError?: (err: unknown, subject: string) => void;
}

export function createLocalBus(options: LocalBusOptions = {}): Bus {
  /**
   * Per subject, its subscriptions: one, or several as an array that is
   * replaced, never changed in place, so that a publish keeps the ones of
   * its moment without a copy. A process with gateway workers holds one per
   * user with a socket: no Set or closure per subscription.
   */
  const subscribers = new Map<string, LocalSubscription | LocalSubscription[]>();
  let closed = false;

  class LocalSubscription implements Subscription {
    constructor(
      readonly subject: string,
      readonly handler: EventHandler,
    ) {}

    unsubscribe(): void {
      const current = subscribers.get(this.subject);
      if (Array.isArray(current)) {
        const rest = current.filter((s) => s !== this);
        if (rest.length !== current.length) subscribers.set(this.subject, rest.length === 1 ? rest[0]! : rest);
      } else if (current === this) {
        subscribers.delete(this.subject);
      }
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
      queueMicrotask(() => {
        if (!Array.isArray(targets)) return call(targets, subject, event);
        for (const target of targets) call(target, subject, event);
      });
    },
    subscribe(subject, handler): Subscription {
      // One object per call: the same function may be subscribed twice and removed once.
      const subscription = new LocalSubscription(subject, handler);
      const current = subscribers.get(subject);
      if (current === undefined) subscribers.set(subject, subscription);
      else subscribers.set(subject, Array.isArray(current) ? [...current, subscription] : [current, subscription]);
      return subscription;
    },
    async close() {
      closed = true;
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      subscribers.clear();
    },
  };
}

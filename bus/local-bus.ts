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
  const handlers = new Map<string, Set<EventHandler>>();
  let closed = false;

  const deliver = (subject: string, event: Event, targets: EventHandler[]) => {
    for (const handler of targets) {
      try {
        handler(event, subject);
      } catch (err) {
        options.onHandlerError?.(err, subject);
      }
    }
  };

  return {
    async publish(subject, event) {
      if (closed) throw new Error("bus is closed");
      const set = handlers.get(subject);
      if (!set || set.size === 0) return;
      // Snapshot: a handler that (un)subscribes does not change this delivery.
      const targets = [...set];
      queueMicrotask(() => deliver(subject, event, targets));
    },
    subscribe(subject, handler): Subscription {
      let set = handlers.get(subject);
      if (!set) handlers.set(subject, (set = new Set()));
      // Wrap so the same function can be subscribed twice and removed once.
      const entry: EventHandler = (event, s) => handler(event, s);
      set.add(entry);
      return {
        subject,
        unsubscribe() {
          const current = handlers.get(subject);
          if (!current) return;
          current.delete(entry);
          if (current.size === 0) handlers.delete(subject);
        },
      };
    },
    async close() {
      closed = true;
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      handlers.clear();
    },
  };
}


/**
 * The bus across a parent process and its gateway worker processes, over the
 * Node IPC channel, for the single-node mode with CHAT_GATEWAY_WORKERS > 0.
 * The parent owns the real bus; each worker's subscriptions become the
 * parent's subscriptions on its behalf, and events travel as binary protobuf.
 * Workers never publish: they post through the API.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ChildProcess } from "node:child_process";
import { EventSchema, type Event } from "../gen/chat/v1/event_pb.js";
import type { Bus, EventHandler, Subscription } from "./bus.js";

type ToParent = { bus: "sub" | "unsub"; subject: string };
type ToWorker = { bus: "event"; subject: string; bytes: Uint8Array };

/** The worker's side: a Bus whose subscriptions are served by the parent. */
export function createIpcBus(channel: NodeJS.Process = process): Bus {
  if (!channel.send) throw new Error("the IPC bus needs a parent process (started with an IPC channel)");
  const handlers = new Map<string, Set<EventHandler>>();
  const onMessage = (m: ToWorker) => {
    if (m?.bus !== "event") return;
    const set = handlers.get(m.subject);
    if (!set) return;
    const event = fromBinary(EventSchema, m.bytes);
    for (const h of [...set]) h(event, m.subject);
  };
  channel.on("message", onMessage);
  return {
    async publish() {
      throw new Error("gateway workers do not publish; they post through the API");
    },
    subscribe(subject, handler): Subscription {
      let set = handlers.get(subject);
      if (!set) {
        handlers.set(subject, (set = new Set()));
        channel.send!({ bus: "sub", subject } satisfies ToParent);
      }
      const own: EventHandler = (e, s) => handler(e, s);
      set.add(own);
      return {
        subject,
        unsubscribe() {
          const current = handlers.get(subject);
          if (!current?.delete(own) || current.size > 0) return;
          handlers.delete(subject);
          if (channel.connected) channel.send!({ bus: "unsub", subject } satisfies ToParent);
        },
      };
    },
    async close() {
      channel.off("message", onMessage);
      handlers.clear();
    },
  };
}

/** One encoding per event, however many workers receive it. */
const encoded = new WeakMap<Event, Uint8Array>();
const encode = (event: Event) => {
  let bytes = encoded.get(event);
  if (!bytes) encoded.set(event, (bytes = toBinary(EventSchema, event)));
  return bytes;
};

/** The parent's side: serves one worker's subscriptions from the real bus. Returns a function that detaches it. */
export function bridgeToWorker(bus: Bus, worker: ChildProcess): () => void {
  const subscriptions = new Map<string, Subscription>();
  const onMessage = (m: ToParent) => {
    if (m?.bus === "sub" && !subscriptions.has(m.subject)) {
      subscriptions.set(
        m.subject,
        bus.subscribe(m.subject, (event, subject) => {
          if (worker.connected) worker.send({ bus: "event", subject, bytes: encode(event) } satisfies ToWorker);
        }),
      );
    } else if (m?.bus === "unsub") {
      subscriptions.get(m.subject)?.unsubscribe();
      subscriptions.delete(m.subject);
    }
  };
  worker.on("message", onMessage);
  const detach = () => {
    worker.off("message", onMessage);
    for (const s of subscriptions.values()) s.unsubscribe();
    subscriptions.clear();
  };
  worker.once("exit", detach);
  return detach;
}

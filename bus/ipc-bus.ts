/**
 * The bus across a parent process and its gateway worker processes, over the
 * Node IPC channel, for the single-node mode with CHAT_GATEWAY_WORKERS > 0.
 * The parent owns the real bus and takes one subscription on it per subject
 * that any worker wants; events travel as binary protobuf. Workers never
 * publish: they post through the API.
 *
 * Both sides hold an entry per subject for every user with a socket, in every
 * worker: those entries are kept to a Map entry and at most one small object,
 * with no closure or Set of their own.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ChildProcess } from "node:child_process";
import { EventSchema, type Event } from "../gen/chat/v1/event_pb.js";
import type { Bus } from "./bus.js";
import { callListeners, type EventListener, type Fanout, type FanoutOptions, type Listeners } from "./fanout.js";
import { forEachMember, withMember, withoutMember } from "./one-or-many.js";
import { createSubjectInterest } from "./subject-interest.js";
import type { Subjects } from "./subjects.js";

type ToParent = { bus: "sub" | "unsub"; subject: string };
type ToWorker = { bus: "event"; subject: string; bytes: Uint8Array };

/**
 * The worker's side, as a Fanout of its own rather than a Bus under a Fanout:
 * per channel and per user, only the listeners, in a Map keyed by the id (a
 * bigint the caller holds anyway), where a Bus under a Fanout would hold a
 * subject string, two Map entries and two subscription objects.
 */
export function createIpcFanout(
  subjects: Subjects,
  options: FanoutOptions = {},
  channel: NodeJS.Process = process,
): Fanout & { close(): void } {
  if (!channel.send) throw new Error("the IPC bus needs a parent process (started with an IPC channel)");
  const send = channel.send.bind(channel);
  const byChannel = new Map<bigint, Listeners>();
  const byUser = new Map<bigint, Listeners>();

  const listenersOf = (subject: string): Listeners | undefined => {
    const userId = subjects.parseUser(subject);
    if (userId !== undefined) return byUser.get(userId);
    const channelId = subjects.parseChannel(subject);
    return channelId === undefined ? undefined : byChannel.get(channelId);
  };
  const onMessage = (m: ToWorker) => {
    if (m?.bus !== "event") return;
    const listeners = listenersOf(m.subject);
    if (listeners) callListeners(listeners, fromBinary(EventSchema, m.bytes), options.onListenerError);
  };
  channel.on("message", onMessage);

  const watch = (map: Map<bigint, Listeners>, id: bigint, subject: (id: bigint) => string, listener: EventListener) => {
    const listeners = map.get(id);
    if (listeners) return void map.set(id, withMember(listeners, listener));
    map.set(id, listener);
    send({ bus: "sub", subject: subject(id) } satisfies ToParent);
  };
  const unwatch = (map: Map<bigint, Listeners>, id: bigint, subject: (id: bigint) => string, listener: EventListener) => {
    const listeners = map.get(id);
    if (!listeners) return;
    const rest = withoutMember(listeners, listener);
    if (rest !== undefined) return void map.set(id, rest);
    map.delete(id);
    if (channel.connected) send({ bus: "unsub", subject: subject(id) } satisfies ToParent);
  };

  return {
    watchChannel: (channelId, listener) => watch(byChannel, channelId, subjects.channel, listener),
    unwatchChannel: (channelId, listener) => unwatch(byChannel, channelId, subjects.channel, listener),
    watchUser: (userId, listener) => watch(byUser, userId, subjects.user, listener),
    unwatchUser: (userId, listener) => unwatch(byUser, userId, subjects.user, listener),
    get subscriptionCount() {
      return byChannel.size + byUser.size;
    },
    close() {
      channel.off("message", onMessage);
      byChannel.clear();
      byUser.clear();
    },
  };
}

export interface WorkerBridge {
  /** Serves one worker's subscriptions; returns a function that detaches it (also done when it exits). */
  attach(worker: ChildProcess): () => void;
}

/**
 * The parent's side: one subscription on the real bus per subject that at
 * least one worker wants (a user with sockets on two workers costs one), and
 * one bus handler for all of them, which finds the subject's workers.
 */
export function createWorkerBridge(bus: Bus): WorkerBridge {
  const forward = (event: Event, subject: string) => {
    const workers = wanted.membersOf(subject);
    if (workers === undefined) return;
    // Encoded once, whatever the number of workers.
    const message: ToWorker = { bus: "event", subject, bytes: toBinary(EventSchema, event) };
    forEachMember(workers, (w) => w.connected && w.send(message));
  };
  const wanted = createSubjectInterest<ChildProcess>(bus, forward);

  return {
    attach(worker) {
      const onMessage = (m: ToParent) => {
        if (m?.bus === "sub") wanted.add(m.subject, worker);
        else if (m?.bus === "unsub") wanted.remove(m.subject, worker);
      };
      worker.on("message", onMessage);
      const detach = () => {
        worker.off("message", onMessage);
        // Rare (a worker exits): a walk over every subject rather than a list of subjects per worker.
        for (const subject of [...wanted.subjects()]) wanted.remove(subject, worker);
      };
      worker.once("exit", detach);
      return detach;
    },
  };
}

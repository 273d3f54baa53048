/**
 * The Fanout over a Bus, and its IPC variant in gateway workers with the
 * parent's bridge: one bus subscription per subject however many listeners
 * or workers, listeners as functions or objects, dropped with the last.
 */
import { create } from "@bufbuild/protobuf";
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { createFanout } from "../../bus/fanout.js";
import { createIpcFanout, createWorkerBridge } from "../../bus/ipc-bus.js";
import { createLocalBus } from "../../bus/local-bus.js";
import { createSubjects } from "../../bus/subjects.js";
import { EventSchema, type Event } from "../../gen/chat/v1/event_pb.js";

const subjects = createSubjects("fanout-test");
const settle = () => new Promise((r) => setTimeout(r, 20));
const event = (channelId: bigint, text: string): Event =>
  create(EventSchema, { channelId, payload: { case: "messagePosted", value: { message: { id: 1n, channelId, text } } } });
const texts = (events: Event[]) =>
  events.map((e) => (e.payload.case === "messagePosted" ? e.payload.value.message?.text : e.payload.case));

describe("Fanout over a bus", () => {
  it("takes one bus subscription per subject, calls function and object listeners once each, and drops it with the last", async () => {
    const bus = createLocalBus();
    const fanout = createFanout(bus, subjects);
    const a: Event[] = [];
    const b: Event[] = [];
    const fn = (e: Event) => void a.push(e);
    const obj = { handleEvent: (e: Event) => void b.push(e) };
    fanout.watchChannel(1n, fn);
    fanout.watchChannel(1n, obj);
    fanout.watchChannel(1n, fn); // already there: still called once
    fanout.watchUser(1n, obj);
    expect(fanout.subscriptionCount).toBe(2);
    await bus.publish(subjects.channel(1n), event(1n, "one"));
    await settle();
    expect(texts(a)).toEqual(["one"]);
    expect(texts(b)).toEqual(["one"]);

    fanout.unwatchChannel(1n, fn);
    await bus.publish(subjects.channel(1n), event(1n, "two"));
    await settle();
    expect(texts(a)).toEqual(["one"]);
    expect(texts(b)).toEqual(["one", "two"]);

    fanout.unwatchChannel(1n, obj);
    fanout.unwatchChannel(1n, obj); // no longer there: no effect
    expect(fanout.subscriptionCount).toBe(1);
    await bus.publish(subjects.channel(1n), event(1n, "three"));
    await settle();
    expect(texts(b)).toEqual(["one", "two"]);
    await bus.close();
  });

  it("keeps delivering to the other listeners when one throws", async () => {
    const bus = createLocalBus();
    const errors: unknown[] = [];
    const fanout = createFanout(bus, subjects, { onListenerError: (err) => errors.push(err) });
    const got: Event[] = [];
    fanout.watchChannel(2n, () => {
      throw new Error("boom");
    });
    fanout.watchChannel(2n, { handleEvent: (e) => void got.push(e) });
    await bus.publish(subjects.channel(2n), event(2n, "x"));
    await settle();
    expect(texts(got)).toEqual(["x"]);
    expect(errors).toHaveLength(1);
    await bus.close();
  });
});

/** Two ends of an IPC channel in one process: what one sends, the other receives (asynchronously, as over a pipe). */
function ipcPair() {
  const parentSide = new EventEmitter() as EventEmitter & { connected: boolean; send(m: unknown): boolean };
  const workerSide = new EventEmitter() as EventEmitter & { connected: boolean; send(m: unknown): boolean };
  parentSide.connected = workerSide.connected = true;
  parentSide.send = (m) => (setImmediate(() => workerSide.emit("message", m)), true);
  workerSide.send = (m) => (setImmediate(() => parentSide.emit("message", m)), true);
  return { child: parentSide as unknown as ChildProcess, worker: workerSide as unknown as NodeJS.Process };
}

describe("gateway workers' fanout over IPC", () => {
  it("takes one subscription on the parent's bus per subject, for all workers, and forwards each event to the workers that want it", async () => {
    const bus = createLocalBus();
    const subscribed: string[] = [];
    const handled: string[] = [];
    const counting: typeof bus = {
      ...bus,
      subscribe: (subject, handler) => {
        subscribed.push(subject);
        return bus.subscribe(subject, (e, s) => (handled.push(s), handler(e, s)));
      },
    };
    const bridge = createWorkerBridge(counting);
    const one = ipcPair();
    const two = ipcPair();
    bridge.attach(one.child);
    const detachTwo = bridge.attach(two.child);
    const fanoutOne = createIpcFanout(subjects, {}, one.worker);
    const fanoutTwo = createIpcFanout(subjects, {}, two.worker);
    const gotOne: Event[] = [];
    const gotTwo: Event[] = [];
    const gotUser: Event[] = [];
    fanoutOne.watchChannel(5n, (e) => void gotOne.push(e));
    fanoutTwo.watchChannel(5n, { handleEvent: (e) => void gotTwo.push(e) });
    fanoutTwo.watchUser(9n, (e) => void gotUser.push(e));
    expect(fanoutTwo.subscriptionCount).toBe(2);
    await settle();
    expect(subscribed.sort()).toEqual([subjects.channel(5n), subjects.user(9n)].sort());

    await bus.publish(subjects.channel(5n), event(5n, "both"));
    await bus.publish(subjects.user(9n), event(0n, "user"));
    await settle();
    expect(texts(gotOne)).toEqual(["both"]);
    expect(texts(gotTwo)).toEqual(["both"]);
    expect(texts(gotUser)).toEqual(["user"]);

    // A worker that goes away stops receiving; the other keeps the subscription.
    detachTwo();
    await bus.publish(subjects.channel(5n), event(5n, "one only"));
    await settle();
    expect(texts(gotOne)).toEqual(["both", "one only"]);
    expect(texts(gotTwo)).toEqual(["both"]);

    // The last listener of the last worker drops the parent's subscription.
    const listener = () => undefined;
    fanoutOne.watchChannel(6n, listener);
    await settle();
    await bus.publish(subjects.channel(6n), event(6n, "someone"));
    await settle();
    fanoutOne.unwatchChannel(6n, listener);
    await settle();
    await bus.publish(subjects.channel(6n), event(6n, "nobody"));
    await settle();
    expect(subscribed.filter((s) => s === subjects.channel(6n))).toHaveLength(1);
    expect(handled.filter((s) => s === subjects.channel(6n))).toHaveLength(1);
    fanoutOne.close();
    fanoutTwo.close();
    await bus.close();
  });
});

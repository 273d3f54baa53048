/**
 * Behaviour every Bus must have. Each implementation's test file calls
 * describeBusContract; subjects are unique per test so a shared server works.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bus } from "../../bus/bus.js";
import { createSubjects } from "../../bus/subjects.js";
import { EventSchema, type Event } from "../../gen/chat/v1/event_pb.js";

export interface BusFactory {
  create(): Promise<Bus>;
}

let counter = 0;
const subjects = createSubjects(`test${process.pid}`);
const uniqueChannel = () => subjects.channel(BigInt(Date.now()) * 1000n + BigInt(++counter));

function posted(channelId: bigint, n: number): Event {
  return create(EventSchema, {
    at: timestampFromMs(Date.now()),
    channelId,
    payload: {
      case: "messagePosted",
      value: { message: { id: BigInt(n), channelId, senderId: 1n, text: `message ${n} ✓` } },
    },
  });
}

function collect(bus: Bus, subject: string) {
  const got: Event[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const sub = bus.subscribe(subject, (e) => {
    got.push(e);
    for (const w of waiters) if (got.length >= w.n) w.resolve();
  });
  return {
    got,
    sub,
    until: (n: number, ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        if (got.length >= n) return resolve();
        const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${n} events on ${subject}`)), ms);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
      }),
  };
}

const settle = (ms = 200) => new Promise((r) => setTimeout(r, ms));

export function describeBusContract(name: string, factory: BusFactory): void {
  describe(`Bus contract: ${name}`, () => {
    let bus: Bus;
    beforeAll(async () => {
      bus = await factory.create();
    });
    afterAll(async () => {
      await bus.close();
    });

    it("delivers events intact, in publish order, to every subscriber of the subject", async () => {
      const subject = uniqueChannel();
      const a = collect(bus, subject);
      const b = collect(bus, subject);
      await settle(50);
      const events = Array.from({ length: 200 }, (_, i) => posted(subjects.parseChannel(subject)!, i + 1));
      for (const e of events) await bus.publish(subject, e);
      await Promise.all([a.until(200), b.until(200)]);
      for (const c of [a, b]) {
        expect(c.got.map((e) => (e.payload.case === "messagePosted" ? e.payload.value.message?.id : 0n))).toEqual(
          events.map((_, i) => BigInt(i + 1)),
        );
        expect(c.got[0]).toEqual(events[0]);
      }
      a.sub.unsubscribe();
      b.sub.unsubscribe();
    });

    it("keeps subjects apart", async () => {
      const one = uniqueChannel();
      const two = uniqueChannel();
      const a = collect(bus, one);
      const b = collect(bus, two);
      await settle(50);
      await bus.publish(one, posted(1n, 1));
      await a.until(1);
      await settle();
      expect(b.got).toEqual([]);
      a.sub.unsubscribe();
      b.sub.unsubscribe();
    });

    it("stops delivering after unsubscribe, to that subscriber only", async () => {
      const subject = uniqueChannel();
      const a = collect(bus, subject);
      const b = collect(bus, subject);
      await settle(50);
      a.sub.unsubscribe();
      await bus.publish(subject, posted(1n, 1));
      await b.until(1);
      await settle();
      expect(a.got).toEqual([]);
      b.sub.unsubscribe();
    });

    it("publishing with no subscribers is not an error", async () => {
      await expect(bus.publish(uniqueChannel(), posted(1n, 1))).resolves.toBeUndefined();
    });

    it("a throwing subscriber does not stop delivery to the others", async () => {
      const subject = uniqueChannel();
      bus.subscribe(subject, () => {
        throw new Error("boom");
      });
      const b = collect(bus, subject);
      await settle(50);
      await bus.publish(subject, posted(1n, 1));
      await bus.publish(subject, posted(1n, 2));
      await b.until(2);
    });
  });
}

import { describe, expect, it } from "vitest";
import { createIdGenerator, firstIdAt, ID_EPOCH_MS, MAX_ID, timestampOfId } from "../../core/ids.js";

describe("ids", () => {
  it("are strictly increasing within one generator, also within one millisecond", () => {
    const gen = createIdGenerator({ nodeId: 7, now: () => ID_EPOCH_MS + 1000 });
    let last = -1n;
    for (let i = 0; i < 10_000; i++) {
      const id = gen.next();
      expect(id > last).toBe(true);
      last = id;
    }
  });

  it("never go backwards when the clock does", () => {
    let t = ID_EPOCH_MS + 5000;
    const gen = createIdGenerator({ nodeId: 1, now: () => t });
    const a = gen.next();
    t -= 2000;
    const b = gen.next();
    expect(b > a).toBe(true);
    expect(timestampOfId(b)).toBe(ID_EPOCH_MS + 5000);
  });

  it("encode the millisecond and differ across nodes at the same instant", () => {
    const now = () => 1_800_000_000_000;
    const a = createIdGenerator({ nodeId: 1, now }).next();
    const b = createIdGenerator({ nodeId: 2, now }).next();
    expect(a).not.toBe(b);
    expect(timestampOfId(a)).toBe(1_800_000_000_000);
    expect(timestampOfId(b)).toBe(1_800_000_000_000);
    expect(a >= firstIdAt(1_800_000_000_000)).toBe(true);
    expect(a < firstIdAt(1_800_000_000_001)).toBe(true);
  });

  it("stay below the signed 64-bit limit and above zero", () => {
    const id = createIdGenerator({ nodeId: 1023 }).next();
    expect(id > 0n && id <= MAX_ID).toBe(true);
  });

  it("reject node ids outside 0..1023", () => {
    expect(() => createIdGenerator({ nodeId: 1024 })).toThrow(/node id/);
    expect(() => createIdGenerator({ nodeId: -1 })).toThrow(/node id/);
  });

  it("start above notBeforeMs, also when the clock is behind it", () => {
    let t = ID_EPOCH_MS + 10_000;
    const gen = createIdGenerator({ nodeId: 5, notBeforeMs: ID_EPOCH_MS + 20_000, now: () => t });
    expect(gen.lastMs()).toBe(ID_EPOCH_MS + 20_000);
    const a = gen.next();
    expect(timestampOfId(a)).toBe(ID_EPOCH_MS + 20_001);
    expect(gen.lastMs()).toBe(ID_EPOCH_MS + 20_001);
    // The clock catching up within the borrowed millisecond still counts upwards.
    t = ID_EPOCH_MS + 20_001;
    const b = gen.next();
    expect(b > a && timestampOfId(b) === ID_EPOCH_MS + 20_001).toBe(true);
    t = ID_EPOCH_MS + 30_000;
    expect(timestampOfId(gen.next())).toBe(ID_EPOCH_MS + 30_000);
    expect(gen.lastMs()).toBe(ID_EPOCH_MS + 30_000);
  });

  it("never repeat an id of an earlier holder that handed over lastMs()", () => {
    // The earlier holder's clock ran 5 s ahead of the new holder's.
    const earlier = createIdGenerator({ nodeId: 9, now: () => ID_EPOCH_MS + 15_000 });
    const seen = new Set<bigint>();
    for (let i = 0; i < 5000; i++) seen.add(earlier.next());
    const later = createIdGenerator({ nodeId: 9, notBeforeMs: earlier.lastMs(), now: () => ID_EPOCH_MS + 10_000 });
    for (let i = 0; i < 10_000; i++) expect(seen.has(later.next())).toBe(false);
    expect(later.lastMs()).toBeGreaterThan(earlier.lastMs());
  });

  it("use the clock when notBeforeMs is behind it, and report the last ms", () => {
    const fresh = createIdGenerator({ nodeId: 1, now: () => ID_EPOCH_MS + 7 });
    expect(fresh.lastMs()).toBe(ID_EPOCH_MS - 1);
    const gen = createIdGenerator({ nodeId: 1, notBeforeMs: ID_EPOCH_MS + 3, now: () => ID_EPOCH_MS + 7 });
    expect(timestampOfId(gen.next())).toBe(ID_EPOCH_MS + 7);
    expect(createIdGenerator({ nodeId: 1, notBeforeMs: 0 }).next() > 0n).toBe(true);
    expect(() => createIdGenerator({ nodeId: 1, notBeforeMs: 1.5 })).toThrow(/notBeforeMs/);
  });
});

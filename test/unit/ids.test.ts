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
});

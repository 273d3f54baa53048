import { describe, expect, it } from "vitest";
import { PublishOrder } from "../../chat/messages/publish-order.js";

describe("PublishOrder", () => {
  it("publishes each channel's events in reservation order, whatever order the writes finish in", async () => {
    const order = new PublishOrder();
    const published: string[] = [];
    const a1 = order.reserve(1n);
    const a2 = order.reserve(1n);
    const b1 = order.reserve(2n);
    const a3 = order.reserve(1n);
    const done = [
      order.publish(1n, a3, async () => void published.push("a3")),
      order.publish(2n, b1, async () => void published.push("b1")),
      order.publish(1n, a2, async () => void published.push("a2")),
    ];
    expect(published).toEqual(["b1"]);
    order.skip(1n, a1);
    await Promise.all(done);
    expect(published).toEqual(["b1", "a2", "a3"]);
  });

  it("settles a publish that fails, and does not hold the next one", async () => {
    const order = new PublishOrder();
    const s1 = order.reserve(7n);
    const s2 = order.reserve(7n);
    const failing = order.publish(7n, s1, async () => {
      throw new Error("bus down");
    });
    let second = false;
    await order.publish(7n, s2, async () => void (second = true));
    await failing;
    expect(second).toBe(true);
  });
});

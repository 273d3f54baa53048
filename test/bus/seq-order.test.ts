/** SeqOrder: each channel's logged changes in seq order, gaps waited for briefly, FAST previews not doubled. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeliveryMode } from "../../gen/chat/v1/channel_pb.js";
import { EventSchema, type Event } from "../../gen/chat/v1/event_pb.js";
import { SeqOrder } from "../../bus/seq-order.js";

const reaction = (seq: bigint): Event =>
  create(EventSchema, { channelId: 1n, seq, payload: { case: "reactionAdded", value: { messageId: 9n, emoji: "👍", userId: 2n, count: 1 } } });
const posted = (seq: bigint, id: bigint, delivery = DeliveryMode.FAST): Event =>
  create(EventSchema, { channelId: 1n, seq, payload: { case: "messagePosted", value: { message: { id, channelId: 1n, text: "t" }, delivery } } });

function recorder(waitMs = 30) {
  const out: Array<[bigint, string]> = [];
  const order = new SeqOrder((e, subject) => out.push([e.seq, subject]), waitMs);
  return { out, order, seqs: () => out.map(([s]) => s) };
}

describe("SeqOrder", () => {
  it("passes events in order at once, and puts an early one behind the gap it skipped", () => {
    const { order, seqs } = recorder();
    order.offer(reaction(5n), "a");
    order.offer(reaction(7n), "a");
    expect(seqs()).toEqual([5n]);
    order.offer(reaction(6n), "a");
    expect(seqs()).toEqual([5n, 6n, 7n]);
    // Another channel has an order of its own.
    order.offer(reaction(100n), "b");
    expect(seqs()).toEqual([5n, 6n, 7n, 100n]);
  });

  it("gives up on a gap after the wait, sends what waited in order, and still passes a late one", async () => {
    const { order, seqs } = recorder(20);
    order.offer(reaction(1n), "a");
    order.offer(reaction(4n), "a");
    order.offer(reaction(3n), "a");
    await new Promise((r) => setTimeout(r, 60));
    expect(seqs()).toEqual([1n, 3n, 4n]);
    order.offer(reaction(2n), "a");
    order.offer(reaction(5n), "a");
    expect(seqs()).toEqual([1n, 3n, 4n, 2n, 5n]);
  });

  it("passes events outside the log (seq 0) straight through", () => {
    const { order, seqs } = recorder();
    order.offer(reaction(10n), "a");
    order.offer(reaction(12n), "a");
    order.offer(create(EventSchema, { channelId: 1n, payload: { case: "memberLeft", value: { userId: 3n } } }), "a");
    expect(seqs()).toEqual([10n, 0n]);
  });

  it("drops the sequenced copy of a FAST preview it passed on, and passes one whose preview it never saw", () => {
    const { order, seqs } = recorder();
    order.offer(posted(0n, 500n), "a");
    order.offer(reaction(1n), "a");
    order.offer(posted(2n, 500n), "a");
    order.offer(reaction(3n), "a");
    order.offer(posted(4n, 501n), "a");
    expect(seqs()).toEqual([0n, 1n, 3n, 4n]);
  });

  it("forgets a channel's state with its last listener", () => {
    const { order, seqs } = recorder();
    order.offer(reaction(1n), "a");
    order.forget("a");
    order.offer(reaction(9n), "a");
    expect(seqs()).toEqual([1n, 9n]);
  });
});

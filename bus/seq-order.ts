/**
 * Puts each channel's logged changes (Event.seq 1, 2, 3, ...) back in order
 * before they reach a process's listeners. Two API nodes may publish one
 * channel's changes a moment apart in the other order; a client that saw 7
 * before 6 and dropped would resume after 7 and never see 6. An event ahead
 * of the next seq waits here until the gap fills, for at most REORDER_WAIT_MS
 * (then what waits goes out in order, and the gap is left to the client's
 * resume). Events outside the log (seq 0) pass straight through.
 *
 * FAST posts on the scale-out layout come twice: at once as a preview without
 * a seq, and with their seq once the write-behind stored them. A process that
 * passed the preview on drops the sequenced copy (it only moves the order on),
 * so listeners see each post once; one that never saw the preview (the bus
 * was away then) passes the sequenced one on.
 */
import { DeliveryMode } from "../gen/chat/v1/channel_pb.js";
import type { Event } from "../gen/chat/v1/event_pb.js";

/** How long an event ahead of a gap waits for the gap to fill. */
export const REORDER_WAIT_MS = 100;
/** FAST previews remembered per channel, to drop their sequenced copies. */
const PREVIEWS_REMEMBERED = 4_096;

interface ChannelOrder {
  /** The seq that may go out next. */
  next: bigint;
  /** Events ahead of `next`, in seq order. */
  held: Event[];
  timer: NodeJS.Timeout | undefined;
  /** Ids of FAST posts passed on without a seq (insertion order: oldest first). */
  previews: Set<bigint> | undefined;
}

export class SeqOrder {
  private readonly channels = new Map<string, ChannelOrder>();

  constructor(
    private readonly pass: (event: Event, subject: string) => void,
    private readonly waitMs = REORDER_WAIT_MS,
  ) {}

  offer(event: Event, subject: string): void {
    const postedId = event.payload.case === "messagePosted" ? event.payload.value.message?.id : undefined;
    if (event.seq === 0n) {
      if (postedId !== undefined && event.payload.case === "messagePosted" && event.payload.value.delivery === DeliveryMode.FAST) this.rememberPreview(subject, postedId);
      this.pass(event, subject);
      return;
    }
    let order = this.channels.get(subject);
    if (!order) this.channels.set(subject, (order = { next: event.seq, held: [], timer: undefined, previews: undefined }));
    // 0: only previews seen so far; the first sequenced event sets where the order starts.
    if (order.next === 0n) order.next = event.seq;
    if (event.seq < order.next) {
      // Late, after its gap was given up on: better out of order than never.
      if (!this.isPreviewed(order, postedId)) this.pass(event, subject);
      return;
    }
    if (event.seq > order.next) {
      const at = order.held.findIndex((e) => e.seq >= event.seq);
      if (at === -1) order.held.push(event);
      else if (order.held[at]!.seq !== event.seq) order.held.splice(at, 0, event);
      order.timer ??= setTimeout(() => this.giveUpWaiting(subject), this.waitMs).unref();
      return;
    }
    this.send(order, event, subject);
    this.drain(order, subject);
  }

  /** Drops a channel's state (its subject has no listeners left in this process). */
  forget(subject: string): void {
    const order = this.channels.get(subject);
    if (order) clearTimeout(order.timer);
    this.channels.delete(subject);
  }

  private send(order: ChannelOrder, event: Event, subject: string): void {
    order.next = event.seq + 1n;
    const postedId = event.payload.case === "messagePosted" ? event.payload.value.message?.id : undefined;
    if (!this.isPreviewed(order, postedId)) this.pass(event, subject);
  }

  private drain(order: ChannelOrder, subject: string): void {
    while (order.held.length > 0 && order.held[0]!.seq <= order.next) {
      const event = order.held.shift()!;
      if (event.seq === order.next) this.send(order, event, subject);
    }
    if (order.held.length === 0 && order.timer) {
      clearTimeout(order.timer);
      order.timer = undefined;
    }
  }

  private giveUpWaiting(subject: string): void {
    const order = this.channels.get(subject);
    if (!order) return;
    order.timer = undefined;
    const first = order.held[0];
    if (!first) return;
    order.next = first.seq;
    this.drain(order, subject);
    // What is left waits behind the next gap, with a fresh timer.
    if (order.held.length > 0) order.timer = setTimeout(() => this.giveUpWaiting(subject), this.waitMs).unref();
  }

  private rememberPreview(subject: string, id: bigint): void {
    let order = this.channels.get(subject);
    if (!order) this.channels.set(subject, (order = { next: 0n, held: [], timer: undefined, previews: undefined }));
    const previews = (order.previews ??= new Set());
    previews.add(id);
    if (previews.size > PREVIEWS_REMEMBERED) previews.delete(previews.values().next().value!);
  }

  /** Whether this sequenced post was passed on as a preview already (and forgets it). */
  private isPreviewed(order: ChannelOrder, postedId: bigint | undefined): boolean {
    if (postedId === undefined || !order.previews?.has(postedId)) return false;
    order.previews.delete(postedId);
    return true;
  }
}

/**
 * One client's live event feed, whatever carries it (a WebSocket on the
 * gateway, an EventService.Subscribe stream for bots): which channels it
 * follows, live membership changes, and resume without loss.
 *
 * Each channel is either live (the transport delivers its events, e.g. via a
 * uWebSockets.js topic) or held (its events are buffered here). Resuming a
 * channel holds it, replays the changes missed since the client's cursor
 * from the channel's change log (posts, edits, deletes, reactions, thread
 * updates, pins: Event.seq), sends a `resumed` marker, then flushes the
 * buffer (skipping changes already replayed) and makes it live again, all in
 * one synchronous step, so the client sees each missed change once, in
 * order, before any new event.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Fanout } from "../bus/fanout.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import type { ErrorCode } from "../gen/chat/v1/error_pb.js";
import { ServerFrameSchema, type ChannelCursor, type ServerFrame } from "../gen/chat/v1/frame_pb.js";
import type { EventBackend } from "./event-backend.js";
import type { UserPrincipal } from "../chat/auth.js";
import { toConnectError } from "../chat/errors.js";

/** How frames reach the client. */
export interface SessionTransport {
  /** Sends one frame to this client only. */
  send(frame: ServerFrame): void;
  /** Starts delivering a channel's live events to this client. */
  follow(channelId: bigint): void;
  /** Stops delivering a channel's live events to this client. */
  unfollow(channelId: bigint): void;
  /** More events piled up than the session may hold: cut the client off. */
  overflow(): void;
}

export interface EventSessionOptions {
  /** Most changes replayed per channel and resume. */
  resumeLimit: number;
  /** Most events buffered for held channels before the client is cut off. */
  maxHeldEvents: number;
  /** Most cursors in one resume. */
  maxCursors: number;
}

type FrameInit = NonNullable<MessageInitShape<typeof ServerFrameSchema>["frame"]>;
export const frame = (f: FrameInit): ServerFrame => create(ServerFrameSchema, { frame: f });

/** A logged change's place in its channel's log; undefined for events outside it (seq 0). */
const seqOf = (event: Event): bigint | undefined => (event.seq === 0n ? undefined : event.seq);
const eventFrame = (event: Event) => frame({ case: "event", value: event });

/**
 * A session's channels: a small array while there are few (most users; less
 * than half the memory of a Set), a Set beyond. Arrays are replaced, never
 * changed in place.
 */
type ChannelIds = readonly bigint[] | Set<bigint>;
const SMALL_CHANNEL_LIST = 16;
const NO_CHANNELS: readonly bigint[] = [];
const hasChannel = (ids: ChannelIds, id: bigint): boolean => (ids instanceof Set ? ids.has(id) : ids.includes(id));
const withChannel = (ids: ChannelIds, id: bigint): ChannelIds =>
  ids instanceof Set ? ids.add(id) : ids.length < SMALL_CHANNEL_LIST ? ids.concat(id) : new Set(ids).add(id);
const withoutChannel = (ids: ChannelIds, id: bigint): ChannelIds => {
  if (!(ids instanceof Set)) return ids.filter((x) => x !== id);
  ids.delete(id);
  return ids;
};

/** What every session of a process shares: one object rather than three fields per session. */
export interface SessionEnv {
  backend: EventBackend;
  fanout: Fanout;
  options: EventSessionOptions;
}

/**
 * A session's held and catching-up channels and its queue of resumes, created
 * by the first hold (most sessions never hold: an idle socket keeps one empty
 * field, not four).
 */
interface Holds {
  /** Held channels with their buffered events. */
  held: Map<bigint, { events: Event[]; listener: (event: Event) => void }>;
  heldCount: number;
  /**
   * Channels just resumed whose live stream may still carry changes at or
   * below the replay's last seq (logged, hence replayed, but published a
   * moment later): events are forwarded one by one, those dropped, until a
   * newer change shows the stream has passed them; then the channel goes live.
   */
  catchingUp: Map<bigint, (event: Event) => void>;
  resuming: Promise<void>;
}

export class EventSession {
  /** Every channel this session follows, live or held. */
  private channels: ChannelIds = NO_CHANNELS;
  private holds: Holds | undefined;
  /** User events that arrive while start() loads the channels; undefined once started. */
  private early: Event[] | undefined = [];
  private closed = false;

  constructor(
    readonly user: UserPrincipal,
    private readonly env: SessionEnv,
    private readonly transport: SessionTransport,
  ) {}

  /**
   * Loads the user's channels and starts following them; calls hello with
   * them before any event is sent. Membership changes that happen meanwhile
   * are applied after hello, in order.
   * @param holdAtStart hold every channel from the start until the first
   *   resume (strict catch-up on reconnect).
   */
  async start(hello: (channelIds: bigint[]) => void, holdAtStart = false): Promise<void> {
    this.env.fanout.watchUser(this.user.userId, this);
    const ids = await this.env.backend.channelsOf(this.user, () => !this.closed);
    if (this.closed) return;
    for (const id of ids) this.add(id, holdAtStart);
    hello([...this.channels]);
    const early = this.early ?? [];
    this.early = undefined;
    for (const event of early) this.onUserEvent(event);
  }

  /**
   * The user's events, from the Fanout (the session is its own listener: no
   * closure per session). Not for other callers.
   */
  handleEvent(event: Event): void {
    if (this.early) this.early.push(event);
    else this.onUserEvent(event);
  }

  get channelIds(): bigint[] {
    return [...this.channels];
  }

  /** Catches up on the given channels; resumes run one after another. */
  resume(cursors: ChannelCursor[]): Promise<void> {
    const holds = this.holdsNow();
    holds.resuming = holds.resuming.then(() => this.runResume(cursors));
    return holds.resuming;
  }

  /** Makes every held channel live (the start-up hold ends without a resume). */
  releaseAll(): void {
    if (!this.holds) return;
    for (const channelId of [...this.holds.held.keys()]) this.release(channelId, 0n);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const { fanout } = this.env;
    fanout.unwatchUser(this.user.userId, this);
    for (const channelId of this.channels) {
      const held = this.holds?.held.get(channelId);
      if (held) fanout.unwatchChannel(channelId, held.listener);
      else if (!this.stopCatchingUp(channelId)) this.transport.unfollow(channelId);
    }
    this.holds?.held.clear();
    this.channels = NO_CHANNELS;
  }

  private holdsNow(): Holds {
    return (this.holds ??= { held: new Map(), heldCount: 0, catchingUp: new Map(), resuming: Promise.resolve() });
  }

  private async runResume(cursors: ChannelCursor[]): Promise<void> {
    if (this.closed) return;
    const { options, backend } = this.env;
    if (cursors.length > options.maxCursors) {
      this.sendError(Code.InvalidArgument, `cursors: at most ${options.maxCursors} per resume (got ${cursors.length})`);
      return;
    }
    const wanted = new Map<bigint, bigint>();
    for (const c of cursors) {
      if (!hasChannel(this.channels, c.channelId)) {
        this.sendError(Code.NotFound, `channel ${c.channelId}: not a channel of this session`);
        continue;
      }
      wanted.set(c.channelId, c.lastSeq);
      this.hold(c.channelId, !this.holds?.held.has(c.channelId));
    }
    for (const [channelId, afterSeq] of wanted) {
      let replayed = 0;
      let complete = true;
      let lastSeq = afterSeq;
      try {
        const missed = await backend.missed(this.user, channelId, afterSeq, options.resumeLimit);
        if (this.closed) return;
        if (!hasChannel(this.channels, channelId)) continue; // left the channel meanwhile
        for (const event of missed.events) this.transport.send(eventFrame(event));
        replayed = missed.events.length;
        complete = !missed.hasMore && missed.complete;
        lastSeq = missed.lastSeq;
      } catch (err) {
        if (this.closed) return;
        const e = toConnectError(err);
        this.sendError(e.code, `channel ${channelId}: ${e.rawMessage}`);
        complete = false;
      }
      this.transport.send(frame({ case: "resumed", value: { channelId, replayed, complete, lastSeq } }));
      if (hasChannel(this.channels, channelId)) this.release(channelId, lastSeq);
    }
    // A start-up hold ends with the first resume: channels without a cursor go live too.
    this.releaseAll();
  }

  private onUserEvent(event: Event): void {
    if (this.closed) return;
    const p = event.payload;
    if (p.case === "memberJoined" && p.value.membership?.userId === this.user.userId) {
      this.add(event.channelId, false);
    } else if (p.case === "directMessageOpened") {
      this.add(event.channelId, false);
    } else if (p.case === "memberLeft" && p.value.userId === this.user.userId) {
      this.remove(event.channelId);
    }
    this.transport.send(eventFrame(event));
  }

  private add(channelId: bigint, held: boolean): void {
    if (hasChannel(this.channels, channelId)) return;
    this.channels = withChannel(this.channels, channelId);
    if (held) this.hold(channelId, false);
    else this.transport.follow(channelId);
  }

  private remove(channelId: bigint): void {
    if (!hasChannel(this.channels, channelId)) return;
    this.channels = withoutChannel(this.channels, channelId);
    const held = this.holds?.held.get(channelId);
    if (held) {
      this.env.fanout.unwatchChannel(channelId, held.listener);
      this.holds!.heldCount -= held.events.length;
      this.holds!.held.delete(channelId);
    } else if (!this.stopCatchingUp(channelId)) {
      this.transport.unfollow(channelId);
    }
  }

  private hold(channelId: bigint, wasLive: boolean): void {
    const holds = this.holdsNow();
    if (holds.held.has(channelId)) return;
    if (this.stopCatchingUp(channelId)) wasLive = false;
    const events: Event[] = [];
    const listener = (event: Event) => {
      if (holds.heldCount >= this.env.options.maxHeldEvents) {
        this.transport.overflow();
        return;
      }
      events.push(event);
      holds.heldCount++;
    };
    this.env.fanout.watchChannel(channelId, listener);
    holds.held.set(channelId, { events, listener });
    if (wasLive) this.transport.unfollow(channelId);
  }

  /**
   * Sends what was buffered (minus changes at or below lastSeq) and goes live
   * in one step, or, if the buffer holds no change newer than lastSeq yet,
   * catches up first (see Holds.catchingUp).
   */
  private release(channelId: bigint, lastSeq: bigint): void {
    const holds = this.holds;
    const held = holds?.held.get(channelId);
    if (!holds || !held) return;
    const { fanout } = this.env;
    fanout.unwatchChannel(channelId, held.listener);
    holds.held.delete(channelId);
    holds.heldCount -= held.events.length;
    let passed = lastSeq === 0n;
    for (const event of held.events) {
      const seq = seqOf(event);
      if (seq !== undefined && seq <= lastSeq) continue;
      if (seq !== undefined) passed = true;
      this.transport.send(eventFrame(event));
    }
    if (passed) {
      this.transport.follow(channelId);
      return;
    }
    const listener = (event: Event) => {
      const seq = seqOf(event);
      if (seq !== undefined && seq <= lastSeq) return;
      this.transport.send(eventFrame(event));
      if (seq === undefined) return;
      // Events of a channel are published in seq order: nothing older can follow.
      this.stopCatchingUp(channelId);
      this.transport.follow(channelId);
    };
    holds.catchingUp.set(channelId, listener);
    fanout.watchChannel(channelId, listener);
  }

  /** Ends a channel's catch-up, if it had one; returns whether it had. */
  private stopCatchingUp(channelId: bigint): boolean {
    const listener = this.holds?.catchingUp.get(channelId);
    if (!listener) return false;
    this.env.fanout.unwatchChannel(channelId, listener);
    this.holds!.catchingUp.delete(channelId);
    return true;
  }

  private sendError(code: Code, message: string): void {
    this.transport.send(frame({ case: "error", value: { error: { code: code as number as ErrorCode, message } } }));
  }
}

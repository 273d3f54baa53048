/**
 * One client's live event feed, whatever carries it (a WebSocket on the
 * gateway, an EventService.Subscribe stream for bots): which channels it
 * follows, live membership changes, and resume without loss.
 *
 * Each channel is either live (the transport delivers its events, e.g. via a
 * uWebSockets.js topic) or held (its events are buffered here). Resuming a
 * channel holds it, replays what was missed from the store, sends a
 * `resumed` marker, then flushes the buffer (skipping messages already
 * replayed) and makes it live again, all in one synchronous step, so the
 * client sees the missed messages, in order, before any new event.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Fanout } from "../bus/fanout.js";
import type { DeliveryMode } from "../gen/chat/v1/channel_pb.js";
import { EventSchema, type Event } from "../gen/chat/v1/event_pb.js";
import type { ErrorCode } from "../gen/chat/v1/error_pb.js";
import { ServerFrameSchema, type ChannelCursor, type ServerFrame } from "../gen/chat/v1/frame_pb.js";
import type { Message } from "../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "./auth.js";
import { toConnectError } from "./errors.js";

/** What a session needs from the API. */
export interface EventBackend {
  /**
   * Every channel the user belongs to. A backend that queues reads may skip
   * one (and answer anything) once stillWanted says its session is gone.
   */
  channelsOf(user: UserPrincipal, stillWanted?: () => boolean): Promise<bigint[]>;
  /**
   * Up to `limit` messages of the channel after `after`, oldest first, with
   * the channel's delivery mode. Throws NOT_FOUND or PERMISSION_DENIED for
   * channels the user may not read.
   */
  missed(
    user: UserPrincipal,
    channelId: bigint,
    after: bigint,
    limit: number,
  ): Promise<{ messages: Message[]; hasMore: boolean; delivery: DeliveryMode }>;
}

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
  /** Most messages replayed per channel and resume. */
  resumeLimit: number;
  /** Most events buffered for held channels before the client is cut off. */
  maxHeldEvents: number;
  /** Most cursors in one resume. */
  maxCursors: number;
}

type FrameInit = NonNullable<MessageInitShape<typeof ServerFrameSchema>["frame"]>;
export const frame = (f: FrameInit): ServerFrame => create(ServerFrameSchema, { frame: f });

const messageIdOf = (event: Event): bigint | undefined =>
  event.payload.case === "messagePosted" ? event.payload.value.message?.id : undefined;
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

export class EventSession {
  /** Every channel this session follows, live or held. */
  private channels: ChannelIds = NO_CHANNELS;
  /** Held channels with their buffered events; created on first use (most sessions never hold). */
  private held: Map<bigint, { events: Event[]; listener: (event: Event) => void }> | undefined;
  private heldCount = 0;
  /**
   * Channels just resumed whose live stream may still carry messages at or
   * below the replay's last id (stored, hence replayed, but published a
   * moment later): events are forwarded one by one, those dropped, until a
   * newer message shows the stream has passed them; then the channel goes live.
   */
  private catchingUp: Map<bigint, (event: Event) => void> | undefined;
  /** User events that arrive while start() loads the channels; undefined once started. */
  private early: Event[] | undefined = [];
  private closed = false;
  private resuming: Promise<void> | undefined;
  private readonly onUser = (event: Event) => {
    if (this.early) this.early.push(event);
    else this.onUserEvent(event);
  };

  /**
   * @param holdAtStart hold every channel from the start until the first
   *   resume (strict catch-up on reconnect).
   */
  constructor(
    readonly user: UserPrincipal,
    private readonly backend: EventBackend,
    private readonly fanout: Fanout,
    private readonly transport: SessionTransport,
    private readonly options: EventSessionOptions,
    private readonly holdAtStart = false,
  ) {}

  /**
   * Loads the user's channels and starts following them; calls hello with
   * them before any event is sent. Membership changes that happen meanwhile
   * are applied after hello, in order.
   */
  async start(hello: (channelIds: bigint[]) => void): Promise<void> {
    this.fanout.watchUser(this.user.userId, this.onUser);
    const ids = await this.backend.channelsOf(this.user, () => !this.closed);
    if (this.closed) return;
    for (const id of ids) this.add(id, this.holdAtStart);
    hello([...this.channels]);
    const early = this.early ?? [];
    this.early = undefined;
    for (const event of early) this.onUserEvent(event);
  }

  get channelIds(): bigint[] {
    return [...this.channels];
  }

  /** Catches up on the given channels; resumes run one after another. */
  resume(cursors: ChannelCursor[]): Promise<void> {
    this.resuming = (this.resuming ?? Promise.resolve()).then(() => this.runResume(cursors));
    return this.resuming;
  }

  /** Makes every held channel live (the start-up hold ends without a resume). */
  releaseAll(): void {
    if (!this.held) return;
    for (const channelId of [...this.held.keys()]) this.release(channelId, 0n);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fanout.unwatchUser(this.user.userId, this.onUser);
    for (const channelId of this.channels) {
      const held = this.held?.get(channelId);
      if (held) this.fanout.unwatchChannel(channelId, held.listener);
      else if (!this.stopCatchingUp(channelId)) this.transport.unfollow(channelId);
    }
    this.held = undefined;
    this.channels = NO_CHANNELS;
  }

  private async runResume(cursors: ChannelCursor[]): Promise<void> {
    if (this.closed) return;
    if (cursors.length > this.options.maxCursors) {
      this.sendError(Code.InvalidArgument, `cursors: at most ${this.options.maxCursors} per resume (got ${cursors.length})`);
      return;
    }
    const wanted = new Map<bigint, bigint>();
    for (const c of cursors) {
      if (!hasChannel(this.channels, c.channelId)) {
        this.sendError(Code.NotFound, `channel ${c.channelId}: not a channel of this session`);
        continue;
      }
      wanted.set(c.channelId, c.lastSeenId);
      this.hold(c.channelId, !this.held?.has(c.channelId));
    }
    for (const [channelId, lastSeen] of wanted) {
      let replayed: Message[] = [];
      let complete = true;
      try {
        const page = await this.backend.missed(this.user, channelId, lastSeen, this.options.resumeLimit);
        if (this.closed) return;
        if (!hasChannel(this.channels, channelId)) continue; // left the channel meanwhile
        replayed = page.messages;
        complete = !page.hasMore;
        for (const message of replayed) {
          this.transport.send(
            eventFrame(
              create(EventSchema, {
                at: message.createdAt ?? timestampFromMs(Date.now()),
                channelId,
                payload: { case: "messagePosted", value: { message, delivery: page.delivery } },
              }),
            ),
          );
        }
      } catch (err) {
        if (this.closed) return;
        const e = toConnectError(err);
        this.sendError(e.code, `channel ${channelId}: ${e.rawMessage}`);
        complete = false;
      }
      const lastId = replayed.at(-1)?.id ?? lastSeen;
      this.transport.send(frame({ case: "resumed", value: { channelId, replayed: replayed.length, complete, lastId } }));
      if (hasChannel(this.channels, channelId)) this.release(channelId, lastId);
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
    const held = this.held?.get(channelId);
    if (held) {
      this.fanout.unwatchChannel(channelId, held.listener);
      this.heldCount -= held.events.length;
      this.held!.delete(channelId);
    } else if (!this.stopCatchingUp(channelId)) {
      this.transport.unfollow(channelId);
    }
  }

  private hold(channelId: bigint, wasLive: boolean): void {
    this.held ??= new Map();
    if (this.held.has(channelId)) return;
    if (this.stopCatchingUp(channelId)) wasLive = false;
    const events: Event[] = [];
    const listener = (event: Event) => {
      if (this.heldCount >= this.options.maxHeldEvents) {
        this.transport.overflow();
        return;
      }
      events.push(event);
      this.heldCount++;
    };
    this.fanout.watchChannel(channelId, listener);
    this.held.set(channelId, { events, listener });
    if (wasLive) this.transport.unfollow(channelId);
  }

  /**
   * Sends what was buffered (minus messages at or below lastId) and goes live
   * in one step, or, if the buffer holds no message newer than lastId yet,
   * catches up first (see catchingUp).
   */
  private release(channelId: bigint, lastId: bigint): void {
    const held = this.held?.get(channelId);
    if (!held) return;
    this.fanout.unwatchChannel(channelId, held.listener);
    this.held!.delete(channelId);
    this.heldCount -= held.events.length;
    let passed = lastId === 0n;
    for (const event of held.events) {
      const id = messageIdOf(event);
      if (id !== undefined && id <= lastId) continue;
      if (id !== undefined) passed = true;
      this.transport.send(eventFrame(event));
    }
    if (passed) {
      this.transport.follow(channelId);
      return;
    }
    const listener = (event: Event) => {
      const id = messageIdOf(event);
      if (id !== undefined && id <= lastId) return;
      this.transport.send(eventFrame(event));
      if (id === undefined) return;
      // Events of a channel are published in id order: nothing older can follow.
      this.stopCatchingUp(channelId);
      this.transport.follow(channelId);
    };
    (this.catchingUp ??= new Map()).set(channelId, listener);
    this.fanout.watchChannel(channelId, listener);
  }

  /** Ends a channel's catch-up, if it had one; returns whether it had. */
  private stopCatchingUp(channelId: bigint): boolean {
    const listener = this.catchingUp?.get(channelId);
    if (!listener) return false;
    this.fanout.unwatchChannel(channelId, listener);
    this.catchingUp!.delete(channelId);
    return true;
  }

  private sendError(code: Code, message: string): void {
    this.transport.send(frame({ case: "error", value: { error: { code: code as number as ErrorCode, message } } }));
  }
}

/**
 * One socket: the EventSession's transport on a uWebSockets.js WebSocket.
 * Kept small (a class, no per-connection closures or timers): a gateway
 * process holds tens of thousands of these.
 */
import type { WebSocket } from "uWebSockets.js";
import type { UserPrincipal } from "../chat/auth.js";
import type { Logger } from "../core/logger.js";
import type { GatewayMetrics } from "../core/metrics.js";
import type { ServerFrame } from "../gen/chat/v1/frame_pb.js";
import { DISCONNECT, type Disconnect } from "../realtime/disconnect.js";
import { EventSession, type SessionEnv, type SessionTransport } from "../realtime/event-session.js";
import { encodeServerFrame, type WireFormat } from "./codec.js";
import { byteSize, type Topics } from "./topics.js";

/** What every connection of one gateway shares: one object rather than a field each per socket. */
export interface ConnectionEnv {
  topics: Topics;
  /** What sessions read through, and their limits. */
  sessionEnv: SessionEnv;
  metrics: GatewayMetrics;
  logger: Logger;
  /** The first 24 characters of this process's session ids (see Connection.id). */
  sessionIdPrefix: string;
}

export type GatewaySocket = WebSocket<{ connection: Connection }>;

/** A socket's post budget, posts under way and malformed-frame count, created by its first post or bad frame. */
export interface FrameLimits {
  malformed: number;
  postTokens: number;
  postTokensAt: number;
  /** Posts taken but not yet answered (ack or error): the drain waits for them. */
  inFlight: number;
}

const RESOLVED: Promise<void> = Promise.resolve();

export class Connection implements SessionTransport {
  /** The socket while it is open: set by open, cleared by close (uWS forbids any use of a closed one). */
  ws: GatewaySocket | undefined;
  readonly session: EventSession;
  /** Frames are handled one after another, in the order they came. */
  queue: Promise<void> = RESOLVED;
  /** Created by the first post or malformed frame: an idle socket keeps one empty field, not three. */
  limits: FrameLimits | undefined;
  /** When the socket opened (Date.now()), for the session's access log line. */
  openedAt = 0;

  constructor(
    private readonly env: ConnectionEnv,
    /** This process's count of connections when this one came: makes its id. */
    private readonly seq: number,
    user: UserPrincipal,
    readonly format: WireFormat,
    /** With ?resume=1: when the start-up hold ends without a resume (ms), 0 when not holding. */
    public holdUntil: number,
  ) {
    this.session = new EventSession(user, env.sessionEnv, this);
  }

  get user(): UserPrincipal {
    return this.session.user;
  }

  /**
   * The session id, shaped like a UUID: a random prefix per gateway process
   * and the connection's sequence number. Built when needed (hello, logs)
   * rather than kept as a string by every socket.
   */
  get id(): string {
    return this.env.sessionIdPrefix + this.seq.toString(16).padStart(12, "0");
  }

  /** Frames are idle again: drops the settled promise, so idle sockets keep none of their own. */
  settle(queued: Promise<void>): void {
    void queued.then(() => {
      if (this.queue === queued) this.queue = RESOLVED;
    });
  }

  send(f: ServerFrame): void {
    if (!this.ws) return;
    const { metrics } = this.env;
    const bytes = encodeServerFrame(f, this.format);
    const status = this.ws.send(bytes, this.format === "binary");
    const size = byteSize(bytes);
    this.env.topics.outbound.bytes += size;
    metrics.framesOut.inc({ kind: f.frame.case === "event" ? (f.frame.value.payload.case ?? "event") : (f.frame.case ?? "none") });
    metrics.bytesOut.inc(size);
    if (status === 2) this.cutOff("backpressure");
  }

  follow(channelId: bigint): void {
    if (this.ws) this.env.topics.follow(this.ws, channelId, this.format);
  }

  /** The session calls this only for channels it follows; after close, uWS has dropped the topics itself. */
  unfollow(channelId: bigint): void {
    this.env.topics.unfollow(this.ws, channelId, this.format);
  }

  overflow(): void {
    this.cutOff("held events overflow");
  }

  cutOff(why: string): void {
    if (!this.ws) return;
    this.env.metrics.backpressureDrops.inc();
    this.env.logger.debug({ session: this.id, user: String(this.user.userId), why }, "slow consumer cut off");
    this.close(DISCONNECT.tooSlow);
  }

  /** Closes the socket with one of the disconnect table's entries. */
  close(d: Disconnect): void {
    this.ws?.end(d.code, d.reason);
  }
}

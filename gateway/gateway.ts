/**
 * The realtime edge: uWebSockets.js sockets on /ws, one uWS topic per channel
 * and wire format, one bus subscription per channel with at least one local
 * socket (through the Fanout), posting over the socket through the message
 * service, resume without loss (EventSession), and the protections a public
 * edge needs: frame size, malformed-frame budget, backpressure cut-off, post
 * rate limit, per-user connection cap, idle timeout with pings.
 *
 * Close codes (documented in the README):
 *   1001 server shutting down, 1008 too many malformed frames,
 *   1009 frame larger than max_frame_bytes, 1012 events may have been
 *   missed (the bus reconnected): reconnect and resume, 4001 token expired,
 *   4008 too slow: backpressure limit reached (reconnect and resume).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Registry } from "prom-client";
import type { Fanout } from "../bus/fanout.js";
import type { GatewayConfig } from "../core/config.js";
import { timestampOfId } from "../core/ids.js";
import type { Logger } from "../core/logger.js";
import type { GatewayMetrics } from "../core/metrics.js";
import type { ErrorCode } from "../gen/chat/v1/error_pb.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import { PostMessageRequestSchema } from "../gen/chat/v1/message_pb.js";
import type { ServerFrame } from "../gen/chat/v1/frame_pb.js";
import type { Authenticator, Principal, UserPrincipal } from "../chat/auth.js";
import { toConnectError } from "../chat/errors.js";
import type { EventBackend } from "../realtime/event-backend.js";
import {
  EventSession,
  frame,
  type EventSessionOptions,
  type SessionEnv,
  type SessionTransport,
} from "../realtime/event-session.js";
import type { MessageService } from "../chat/messages/message-service.js";
import { BINARY_SUBPROTOCOLS, decodeClientFrame, encodeServerFrame, JSON_SUBPROTOCOL, type WireFormat } from "./codec.js";
import { loadUws, type Uws } from "./uws.js";

export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  resync: 1012,
  tokenExpired: 4001,
  tooSlow: 4008,
} as const;

/** Malformed frames a connection may send before it is closed with 1008. */
export const MALFORMED_FRAME_BUDGET = 10;
/** How often sockets are checked for backpressure over the limit. */
export const BACKPRESSURE_SWEEP_MS = 100;
/** How long a `?resume=1` connection holds events while waiting for its resume frame. */
export const START_HOLD_MS = 10_000;

export interface GatewayOptions {
  config: GatewayConfig;
  auth: Authenticator;
  backend: EventBackend;
  messages: Pick<MessageService, "postMessage">;
  fanout: Fanout;
  metrics: GatewayMetrics;
  /** Served on /metrics of the gateway port. */
  registry: Registry;
  logger: Logger;
  /** Names this process in hello frames (host/pid). */
  serverId?: string;
}

export interface Gateway {
  /** The addresses actually listened on (ports resolved when 0 was asked). */
  readonly addresses: Array<{ host: string; port: number }>;
  readonly connections: number;
  /**
   * Closes every socket with 1012 so that clients reconnect and resume: after
   * the bus lost its connection, live delivery may have missed events.
   */
  resyncAll(): void;
  /** Stops listening and closes every socket with 1001. */
  close(): Promise<void>;
}

/** Shared by every connection of one gateway: what a connection needs to deliver. */
interface GatewayContext {
  app: import("uWebSockets.js").TemplatedApp;
  fanout: Fanout;
  /** What sessions read through (see sessionBackend), and their limits. */
  sessionEnv: SessionEnv;
  metrics: GatewayMetrics;
  logger: Logger;
  /**
   * Per channel: how many local sockets follow its topics, the listener that
   * publishes to them, and the channel's id, which every local session of the
   * channel shares (see sessionBackend).
   */
  topics: Map<bigint, { channelId: bigint; sockets: number; listener: (event: Event) => void }>;
  publishEvent(channelId: bigint, event: Event): void;
  /** The first 24 characters of this process's session ids (see Connection.id). */
  sessionIdPrefix: string;
  /** Bytes queued to sockets (send and publish) since the sweep last read every socket's backlog. */
  outbound: { bytes: number };
}

/**
 * One socket. Kept small (a class, no per-connection closures or timers):
 * a gateway process holds tens of thousands of these.
 */
class Connection implements SessionTransport {
  /** The socket while it is open: set by open, cleared by close (uWS forbids any use of a closed one). */
  ws: import("uWebSockets.js").WebSocket<{ connection: Connection }> | undefined;
  readonly session: EventSession;
  /** Frames are handled one after another, in the order they came. */
  queue: Promise<void> = RESOLVED;
  /** Created by the first post or malformed frame: an idle socket keeps one empty field, not three. */
  limits: { malformed: number; postTokens: number; postTokensAt: number } | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    /** This process's count of connections when this one came: makes its id. */
    private readonly seq: number,
    user: UserPrincipal,
    readonly format: WireFormat,
    /** With ?resume=1: when the start-up hold ends without a resume (ms), 0 when not holding. */
    public holdUntil: number,
  ) {
    this.session = new EventSession(user, ctx.sessionEnv, this);
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
    return this.ctx.sessionIdPrefix + this.seq.toString(16).padStart(12, "0");
  }

  send(f: ServerFrame): void {
    if (!this.ws) return;
    const { metrics } = this.ctx;
    const bytes = encodeServerFrame(f, this.format);
    const status = this.ws.send(bytes, this.format === "binary");
    const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length;
    this.ctx.outbound.bytes += size;
    metrics.framesOut.inc({ kind: f.frame.case === "event" ? (f.frame.value.payload.case ?? "event") : (f.frame.case ?? "none") });
    metrics.bytesOut.inc(size);
    if (status === 2) this.cutOff("backpressure");
  }

  follow(channelId: bigint): void {
    if (!this.ws) return;
    const topic = topicOf(channelId, this.format);
    if (this.ws.isSubscribed(topic)) return;
    this.ws.subscribe(topic);
    let entry = this.ctx.topics.get(channelId);
    if (!entry) {
      const ctx = this.ctx;
      entry = { channelId, sockets: 0, listener: (event: Event) => ctx.publishEvent(channelId, event) };
      ctx.fanout.watchChannel(channelId, entry.listener);
      ctx.topics.set(channelId, entry);
    }
    entry.sockets++;
  }

  /** The session calls this only for channels it follows; after close, uWS has dropped the topics itself. */
  unfollow(channelId: bigint): void {
    if (this.ws && !this.ws.unsubscribe(topicOf(channelId, this.format))) return;
    const entry = this.ctx.topics.get(channelId);
    if (entry && --entry.sockets === 0) {
      this.ctx.fanout.unwatchChannel(channelId, entry.listener);
      this.ctx.topics.delete(channelId);
    }
  }

  overflow(): void {
    this.cutOff("held events overflow");
  }

  cutOff(reason: string): void {
    if (!this.ws) return;
    this.ctx.metrics.backpressureDrops.inc();
    this.ctx.logger.debug({ session: this.id, user: String(this.user.userId), reason }, "slow consumer cut off");
    this.ws.end(CLOSE.tooSlow, "too slow: reconnect and resume");
  }
}

const RESOLVED: Promise<void> = Promise.resolve();
const topicOf = (channelId: bigint, format: WireFormat) => `${channelId}.${format === "binary" ? "b" : "j"}`;

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const uws: Uws = loadUws();
  const { config, auth, backend, messages, fanout, metrics, logger } = options;
  const serverId = options.serverId ?? `${hostname()}/${process.pid}`;
  const app = uws.App();
  const connections = new Set<Connection>();
  const maxConnections = config.maxConnections || defaultMaxConnections(logger);
  /** Upgrades accepted but not yet open: they count against the cap too. */
  let upgrading = 0;
  const perUser = new Map<bigint, number>();
  const topics: GatewayContext["topics"] = new Map();
  const sessionOptions: EventSessionOptions = { resumeLimit: config.resumeLimit, maxHeldEvents: 10_000, maxCursors: 10_000 };
  // Sessions keep the ids of their channels: the topic's bigint, one per
  // channel for every local socket, rather than one per socket from each read.
  const sessionBackend: EventBackend = {
    channelsOf: async (user, stillWanted) =>
      (await backend.channelsOf(user, stillWanted)).map((id) => topics.get(id)?.channelId ?? id),
    missed: (user, channelId, after, limit) => backend.missed(user, channelId, after, limit),
  };

  const outbound = { bytes: 0 };
  const publishEvent = (channelId: bigint, event: Event) => {
    const f = frame({ case: "event", value: event });
    const kind = event.payload.case ?? "event";
    let delivered = 0;
    for (const format of ["binary", "json"] as const) {
      const topic = topicOf(channelId, format);
      const n = app.numSubscribers(topic);
      if (n === 0) continue;
      const bytes = encodeServerFrame(f, format);
      app.publish(topic, bytes, format === "binary");
      delivered += n;
      const size = n * (typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length);
      outbound.bytes += size;
      metrics.bytesOut.inc(size);
    }
    if (delivered === 0) return;
    metrics.framesOut.inc({ kind }, delivered);
    if (event.payload.case === "messagePosted" && event.payload.value.message) {
      metrics.deliveryLatency.observe((Date.now() - timestampOfId(event.payload.value.message.id)) / 1000);
    }
  };

  // 8-4-4-4- of a random UUID; the last 12 hex digits count connections.
  const ctx: GatewayContext = {
    app,
    fanout,
    sessionEnv: { backend: sessionBackend, fanout, options: sessionOptions },
    metrics,
    logger,
    topics,
    publishEvent,
    sessionIdPrefix: randomUUID().slice(0, 24),
    outbound,
  };
  let connectionsSeen = 0;
  const send = (c: Connection, f: ServerFrame) => c.send(f);

  const errorFrame = (code: Code, message: string, clientMsgId = "") =>
    frame({ case: "error", value: { clientMsgId, error: { code: code as number as ErrorCode, message } } });

  const limitsOf = (c: Connection) => (c.limits ??= { malformed: 0, postTokens: config.postBurst, postTokensAt: Date.now() });

  const takePostToken = (c: Connection): boolean => {
    const now = Date.now();
    const limits = limitsOf(c);
    limits.postTokens = Math.min(config.postBurst, limits.postTokens + ((now - limits.postTokensAt) / 1000) * config.postsPerSecond);
    limits.postTokensAt = now;
    if (limits.postTokens < 1) return false;
    limits.postTokens--;
    return true;
  };

  const onFrame = (c: Connection, data: ArrayBuffer, isBinary: boolean) => {
    metrics.bytesIn.inc(data.byteLength);
    if (data.byteLength > config.maxFrameBytes) {
      metrics.framesIn.inc({ kind: "too big" });
      c.ws?.end(CLOSE.tooBig, `frame larger than ${config.maxFrameBytes} bytes`);
      return;
    }
    let clientFrame;
    try {
      clientFrame = decodeClientFrame(data, isBinary);
      if (clientFrame.frame.case === undefined) throw new Error("empty frame: set one of post, resume, ping");
    } catch (err) {
      metrics.framesIn.inc({ kind: "malformed" });
      const limits = limitsOf(c);
      limits.malformed++;
      send(c, errorFrame(Code.InvalidArgument, `malformed frame: ${(err as Error).message}`));
      if (limits.malformed > MALFORMED_FRAME_BUDGET) c.ws?.end(CLOSE.policy, "too many malformed frames");
      return;
    }
    const f = clientFrame.frame;
    metrics.framesIn.inc({ kind: f.case });
    switch (f.case) {
      case "ping":
        send(c, frame({ case: "pong", value: { nonce: f.value.nonce, serverTime: timestampFromMs(Date.now()) } }));
        return;
      case "post": {
        const post = f.value;
        if (!takePostToken(c)) {
          send(c, errorFrame(Code.ResourceExhausted, `rate limit: at most ${config.postsPerSecond} posts per second`, post.clientMsgId));
          return;
        }
        // A post starts once the previous frame is handled, and ends when durable;
        // the next frame may start as soon as this post has its id.
        c.queue = c.queue.then(
          () =>
            new Promise<void>((queued) => {
              if (!c.ws) return queued();
              if (c.holdUntil !== 0) {
                c.holdUntil = 0;
                c.session.releaseAll();
              }
              messages
                .postMessage(
                  c.user,
                  create(PostMessageRequestSchema, { channelId: post.channelId, text: post.text, clientMsgId: post.clientMsgId }),
                  queued,
                )
                .then(
                  ({ message, duplicate }) =>
                    send(c, frame({ case: "ack", value: { clientMsgId: post.clientMsgId, message, duplicate } })),
                  (err: unknown) => {
                    const e = toConnectError(err);
                    if (e.code === Code.Internal) logger.error({ err: e.cause ?? err, session: c.id }, "websocket post failed");
                    send(c, errorFrame(e.code, e.rawMessage, post.clientMsgId));
                  },
                )
                .finally(queued);
            }),
        );
        return;
      }
      case "resume":
        c.holdUntil = 0;
        c.queue = c.queue.then(() => c.session.resume(f.value.cursors));
        return;
    }
  };

  const startSession = (c: Connection) => {
    const started = c.session.start(
      (channelIds) =>
        send(
          c,
          frame({
            case: "hello",
            value: {
              userId: c.user.userId,
              sessionId: c.id,
              serverTime: timestampFromMs(Date.now()),
              channelIds,
              maxFrameBytes: config.maxFrameBytes,
              resumeLimit: config.resumeLimit,
              serverId,
            },
          }),
        ),
      c.holdUntil !== 0,
    );
    const startup = started.catch((err: unknown) => {
      logger.error({ err, session: c.id }, "session start failed");
      c.ws?.end(1011, "could not load your channels");
    });
    c.queue = startup;
    // Idle sockets keep no settled promise of their own.
    void startup.then(() => {
      if (c.queue === startup) c.queue = RESOLVED;
    });
  };

  app.ws<{ connection: Connection }>("/ws", {
    // uWS drops a connection whose frame exceeds its limit without a close
    // frame (the client sees 1006). Its limit is set well above ours, so that
    // frames over max_frame_bytes get a proper 1009 from onFrame; only frames
    // over the hard cap are dropped abruptly.
    maxPayloadLength: hardFrameCap(config.maxFrameBytes),
    // Slow consumers: the sweep below closes a socket with 4008 once more than
    // max_backpressure_bytes wait for it. uWS's own limit, four times higher,
    // is only a backstop for a socket that fills faster than the sweep runs;
    // it closes without a close frame rather than silently skip messages.
    maxBackpressure: config.maxBackpressureBytes * 4,
    closeOnBackpressureLimit: 1,
    idleTimeout: config.idleTimeoutSeconds,
    sendPingsAutomatically: true,

    upgrade(res, req, context) {
      const key = req.getHeader("sec-websocket-key");
      const offered = req.getHeader("sec-websocket-protocol");
      const extensions = req.getHeader("sec-websocket-extensions");
      const query = new URLSearchParams(req.getQuery() ?? "");
      const header = req.getHeader("authorization");
      const token = query.get("access_token");
      const authorization = header !== "" ? header : token ? `Bearer ${token}` : undefined;
      const protocols = offered.split(",").map((p) => p.trim()).filter((p) => p !== "");
      const protocol = protocols.find((p) => p === JSON_SUBPROTOCOL || BINARY_SUBPROTOCOLS.includes(p)) ?? "";
      const format: WireFormat = protocol === JSON_SUBPROTOCOL || query.get("format") === "json" ? "json" : "binary";
      const reject = (status: string, body: string, extra?: [string, string]) => {
        metrics.closes.inc({ reason: `rejected ${status.slice(0, 3)}` });
        res.writeStatus(status);
        if (extra) res.writeHeader(extra[0], extra[1]);
        res.end(body);
      };
      // Always synchronous, inside uWS's upgrade handler: an upgrade from a later res.cork() can close
      // the socket right after open (uWS bug uNetworking/uWebSockets#1928, fixed by #1929, not in v20.30).
      let principal: Principal;
      try {
        principal = auth.authenticate(authorization);
      } catch (err) {
        return reject("401 Unauthorized", `${toConnectError(err).rawMessage}\n`, ["www-authenticate", "Bearer"]);
      }
      if (principal.kind !== "user") return reject("403 Forbidden", "the gateway takes user tokens only\n");
      if (connections.size + upgrading >= maxConnections) {
        return reject("503 Service Unavailable", "gateway full: connect to another\n", ["retry-after", "5"]);
      }
      const count = perUser.get(principal.userId) ?? 0;
      if (count >= config.maxConnectionsPerUser) {
        return reject("429 Too Many Requests", `at most ${config.maxConnectionsPerUser} connections per user\n`, ["retry-after", "30"]);
      }
      perUser.set(principal.userId, count + 1);
      const holdUntil = query.get("resume") === "1" ? Date.now() + START_HOLD_MS : 0;
      const connection = new Connection(ctx, connectionsSeen++, principal, format, holdUntil);
      upgrading++;
      res.upgrade({ connection }, key, protocol, extensions, context);
    },

    open(ws) {
      upgrading = Math.max(0, upgrading - 1);
      const c = ws.getUserData().connection;
      c.ws = ws;
      connections.add(c);
      metrics.connections.inc();
      startSession(c);
    },

    message(ws, data, isBinary) {
      onFrame(ws.getUserData().connection, data, isBinary);
    },

    close(ws, code) {
      const c = ws.getUserData().connection;
      c.ws = undefined;
      connections.delete(c);
      metrics.connections.dec();
      metrics.closes.inc({ reason: closeReason(code) });
      c.session.close();
      const left = (perUser.get(c.user.userId) ?? 1) - 1;
      if (left === 0) perUser.delete(c.user.userId);
      else perUser.set(c.user.userId, left);
    },
  });

  app.get("/healthz", (res) => {
    res.writeHeader("content-type", "text/plain").end("ok\n");
  });
  app.get("/metrics", (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    options.registry.metrics().then(
      (text) => {
        if (!aborted) res.cork(() => res.writeHeader("content-type", options.registry.contentType).end(text));
      },
      () => {
        if (!aborted) res.cork(() => res.writeStatus("500 Internal Server Error").end());
      },
    );
  });
  app.any("/*", (res) => {
    res.writeStatus("404 Not Found").end("not found\n");
  });

  // One timer for all sockets (not one per socket): backpressure every tick,
  // token expiry and the end of start-up holds once a second.
  //
  // A socket's backlog grows only by what is queued to it. So while the
  // fullest backlog the last full check saw, plus every byte queued to any
  // socket since, stays within the limit, no socket can be over it, and the
  // check (a native call per socket, ~1.3 % of a core per 16,000 idle sockets
  // every 100 ms) is skipped: an idle or lightly loaded gateway reads backlogs
  // rarely, a busy one as before. (uWS's own limit, four times higher, closes
  // a socket meanwhile filled by anything not counted here, such as pongs.)
  let ticks = 0;
  let fullestAtCheck = 0;
  const sweep = setInterval(() => {
    const slow = ++ticks % Math.round(1000 / BACKPRESSURE_SWEEP_MS) === 0;
    const check = fullestAtCheck + outbound.bytes > config.maxBackpressureBytes;
    if (!check && !slow) return;
    const now = Date.now();
    let fullest = 0;
    for (const c of connections) {
      if (!c.ws) continue;
      if (check) {
        const backlog = c.ws.getBufferedAmount();
        if (backlog > config.maxBackpressureBytes) {
          c.cutOff("backpressure");
          continue;
        }
        if (backlog > fullest) fullest = backlog;
      }
      if (!slow) continue;
      if (c.user.expiresAt !== undefined && c.user.expiresAt <= now) c.ws.end(CLOSE.tokenExpired, "token expired");
      else if (c.holdUntil !== 0 && c.holdUntil <= now) {
        c.holdUntil = 0;
        c.session.releaseAll();
      }
    }
    if (check) {
      fullestAtCheck = fullest;
      outbound.bytes = 0;
    }
  }, BACKPRESSURE_SWEEP_MS);
  sweep.unref();

  const listenSockets: import("uWebSockets.js").us_listen_socket[] = [];
  const addresses: Array<{ host: string; port: number }> = [];
  for (const { host, port } of config.listen) {
    const socket = await new Promise<import("uWebSockets.js").us_listen_socket | false>((resolve) =>
      app.listen(host, port, resolve),
    );
    if (!socket) {
      for (const s of listenSockets) uws.us_listen_socket_close(s);
      throw new Error(`gateway could not listen on ${host}:${port}`);
    }
    listenSockets.push(socket);
    addresses.push({ host, port: uws.us_socket_local_port(socket as unknown as import("uWebSockets.js").us_socket) });
  }
  logger.info({ addresses: addresses.map((a) => `${a.host}:${a.port}`), path: "/ws" }, "gateway listening (uWebSockets.js)");

  return {
    addresses,
    get connections() {
      return connections.size;
    },
    resyncAll() {
      logger.warn({ sockets: connections.size }, "bus reconnected: asking every socket to reconnect and resume");
      for (const c of [...connections]) c.ws?.end(CLOSE.resync, "events may have been missed: reconnect and resume");
    },
    async close() {
      clearInterval(sweep);
      for (const s of listenSockets) uws.us_listen_socket_close(s);
      listenSockets.length = 0;
      for (const c of [...connections]) c.ws?.end(CLOSE.goingAway, "server shutting down");
    },
  };
}

/**
 * The open-files limit minus a reserve for the process's other files and
 * sockets: at the limit, accepting fails and uSockets retries in a busy loop.
 */
function defaultMaxConnections(logger: Logger): number {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
    if (Number.isFinite(soft) && soft > 0) return Math.max(100, soft - Math.max(200, Math.floor(soft * 0.05)));
  } catch (err) {
    logger.debug({ err }, "no /proc/self/limits; no connection cap from the open-files limit");
  }
  return Number.MAX_SAFE_INTEGER;
}

/** Frames above this are dropped by uWS itself, without a close frame. */
export function hardFrameCap(maxFrameBytes: number): number {
  return Math.min(Math.max(maxFrameBytes * 16, 1024 * 1024), 64 * 1024 * 1024);
}

function closeReason(code: number): string {
  switch (code) {
    case 1000:
      return "normal";
    case 1001:
      return "going away";
    case 1006:
      return "abnormal";
    case CLOSE.policy:
      return "malformed frames";
    case CLOSE.tooBig:
      return "frame too big";
    case CLOSE.resync:
      return "resync";
    case CLOSE.tokenExpired:
      return "token expired";
    case CLOSE.tooSlow:
      return "too slow";
    default:
      return String(code);
  }
}

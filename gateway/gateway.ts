/**
 * The realtime edge: uWebSockets.js sockets on /ws, put together from its
 * parts, one job each:
 * - admission.ts: who gets a socket (credentials, format, caps);
 * - connection.ts: one socket as its session's transport;
 * - frames.ts: hello, then each client frame (ping, post, resume), with the
 *   frame-size limit, the malformed-frame budget and the post rate limit;
 * - topics.ts: channels as uWS topics, one bus subscription per channel;
 * - sweep.ts: backpressure cut-off, token expiry, start-up holds;
 * - http-routes.ts and listen.ts: the port's HTTP and its addresses.
 * Every close uses an entry of realtime/disconnect.ts.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Registry } from "prom-client";
import type { Authenticator } from "../chat/auth.js";
import type { SocketTickets } from "../chat/socket-tickets.js";
import type { MessageService } from "../chat/messages/message-service.js";
import type { Fanout } from "../bus/fanout.js";
import type { Address, GatewayConfig } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import type { GatewayMetrics } from "../core/metrics.js";
import { closeLabel, DISCONNECT } from "../realtime/disconnect.js";
import type { EventBackend } from "../realtime/event-backend.js";
import type { EventSessionOptions } from "../realtime/event-session.js";
import { createAdmission } from "./admission.js";
import { Connection, type ConnectionEnv } from "./connection.js";
import { createFrameHandler } from "./frames.js";
import { registerHttpRoutes } from "./http-routes.js";
import { listenAll } from "./listen.js";
import { startSweep } from "./sweep.js";
import { createTopics } from "./topics.js";
import { loadUws } from "./uws.js";

export interface GatewayOptions {
  config: GatewayConfig;
  auth: Authenticator;
  /** Redeems socket tickets (?ticket=). */
  tickets: SocketTickets;
  backend: EventBackend;
  messages: Pick<MessageService, "postMessage">;
  fanout: Fanout;
  metrics: GatewayMetrics;
  /** Served on /metrics of the gateway port. */
  registry: Registry;
  logger: Logger;
  /** Names this process in hello frames (host/pid). */
  serverId?: string;
  /**
   * Browser origins allowed to open sockets (CHAT_CORS_ORIGINS, as for the
   * API); "*" for any. An upgrade that carries another Origin is refused
   * with 403; clients that send none (not browsers) are not affected.
   */
  allowedOrigins?: readonly string[];
  /** One info line per socket session when it ends (CHAT_ACCESS_LOG); on unless false. */
  accessLog?: boolean;
}

export interface Gateway {
  /** The addresses actually listened on (ports resolved when 0 was asked). */
  readonly addresses: Address[];
  readonly connections: number;
  /**
   * Closes every socket with 1012 so that clients reconnect and resume: after
   * the bus lost its connection, live delivery may have missed events.
   */
  resyncAll(): void;
  /**
   * Stops listening, answers every post under way (new ones get UNAVAILABLE),
   * then closes every socket with 1001; after graceMs, closes them anyway.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const uws = loadUws();
  const { config, backend, fanout, metrics, logger } = options;
  const accessLog = options.accessLog ?? true;
  const app = uws.App();
  const topics = createTopics(app, fanout, metrics);
  const sessionOptions: EventSessionOptions = { resumeLimit: config.resumeLimit, maxHeldEvents: 10_000, maxCursors: 10_000 };
  const env: ConnectionEnv = {
    topics,
    sessionEnv: {
      backend: {
        channelsOf: async (user, stillWanted) => (await backend.channelsOf(user, stillWanted)).map(topics.canonicalId),
        missed: (user, channelId, after, limit) => backend.missed(user, channelId, after, limit),
      },
      fanout,
      options: sessionOptions,
    },
    metrics,
    logger,
    // 8-4-4-4- of a random UUID; the last 12 hex digits count connections.
    sessionIdPrefix: randomUUID().slice(0, 24),
  };
  let connectionsSeen = 0;
  const admission = createAdmission({
    config,
    allowedOrigins: options.allowedOrigins ?? [],
    auth: options.auth,
    tickets: options.tickets,
    metrics,
    logger,
    connect: (user, format, holdUntil) => new Connection(env, connectionsSeen++, user, format, holdUntil),
  });
  const frames = createFrameHandler({
    config,
    messages: options.messages,
    metrics,
    logger,
    serverId: options.serverId ?? `${hostname()}/${process.pid}`,
  });

  app.ws<{ connection: Connection }>("/ws", {
    // uWS drops a connection whose frame exceeds its limit without a close
    // frame (the client sees 1006). Its limit is set well above ours, so that
    // frames over max_frame_bytes get a proper 1009 from the frame handler;
    // only frames over the hard cap are dropped abruptly.
    maxPayloadLength: hardFrameCap(config.maxFrameBytes),
    // Slow consumers: the sweep closes a socket with 4008 once more than
    // max_backpressure_bytes wait for it. uWS's own limit, four times higher,
    // is only a backstop for a socket that fills faster than the sweep runs;
    // it closes without a close frame rather than silently skip messages.
    maxBackpressure: config.maxBackpressureBytes * 4,
    closeOnBackpressureLimit: 1,
    idleTimeout: config.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: admission.upgrade,
    open(ws) {
      metrics.connections.inc();
      frames.start(admission.opened(ws));
    },
    message(ws, data, isBinary) {
      frames.handle(ws.getUserData().connection, data, isBinary);
    },
    close(ws, code) {
      const c = admission.closed(ws);
      const reason = closeLabel(code);
      metrics.connections.dec();
      metrics.closes.inc({ reason });
      c.session.close();
      if (accessLog) logger.info({ session: c.id, user: String(c.user.userId), code, reason, ms: Date.now() - c.openedAt }, "socket session");
    },
  });
  registerHttpRoutes(app, options.registry);
  const stopSweep = startSweep({ connections: admission.connections, outbound: topics.outbound, maxBackpressureBytes: config.maxBackpressureBytes });
  const listening = await listenAll(uws, app, config.listen);
  logger.info({ addresses: listening.addresses.map((a) => `${a.host}:${a.port}`), path: "/ws" }, "gateway listening (uWebSockets.js)");

  const closeAll = (d: (typeof DISCONNECT)["resync" | "shutdown"]) => {
    for (const c of [...admission.connections]) c.close(d);
  };
  return {
    addresses: listening.addresses,
    get connections() {
      return admission.connections.size;
    },
    resyncAll() {
      logger.warn({ sockets: admission.connections.size }, "bus reconnected: asking every socket to reconnect and resume");
      closeAll(DISCONNECT.resync);
    },
    async close(graceMs = 10_000) {
      stopSweep();
      listening.close();
      frames.drain();
      const deadline = Date.now() + graceMs;
      const posting = () => [...admission.connections].some((c) => (c.limits?.inFlight ?? 0) > 0);
      while (posting() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      closeAll(DISCONNECT.shutdown);
    },
  };
}

/** Frames above this are dropped by uWS itself, without a close frame. */
export function hardFrameCap(maxFrameBytes: number): number {
  return Math.min(Math.max(maxFrameBytes * 16, 1024 * 1024), 64 * 1024 * 1024);
}

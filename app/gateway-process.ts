/**
 * Composition root of a gateway in its own process. Two ways to run one:
 * - a worker forked by the main process (CHAT_GATEWAY_WORKERS): its settings,
 *   credentials and the API's address arrive over IPC (bin/gateway-worker.ts),
 *   and so do bus events;
 * - standalone (role gateway, CHAT_BUS=nats): credentials, CHAT_API_URL and
 *   NATS from config, on any host.
 * Either way it verifies tokens itself, follows the bus, and reads and posts
 * through the API with the admin credential acting for each user.
 */
import { createAuthenticator } from "../chat/auth.js";
import { createSocketTickets } from "../chat/socket-tickets.js";
import { createFanout, type Fanout } from "../bus/fanout.js";
import { createIpcFanout } from "../bus/ipc-bus.js";
import { createNatsBus } from "../bus/nats-bus.js";
import { natsConnectionOptions } from "../bus/nats-options.js";
import { createSubjects } from "../bus/subjects.js";
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import { createApiMetrics, createGatewayMetrics } from "../core/metrics.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { connectNats } from "./adapters.js";
import { createRemoteApi } from "../realtime/remote-api.js";

/** What a forked worker receives from the main process before it starts. */
export interface WorkerInit {
  type: "init";
  /** The main process's settings, with the listen ports resolved. */
  config: Config;
  apiUrl: string;
  adminToken: string;
  jwtSecret: string;
  index: number;
}

/** What a worker answers once it listens. */
export interface WorkerReady {
  type: "ready";
  addresses: Array<{ host: string; port: number }>;
}

/** Sent by the main process when its bus reconnected: the workers' sockets may have missed events. */
export interface WorkerResync {
  type: "resync";
}

interface Wiring {
  config: Config;
  apiUrl: string;
  adminToken: string;
  jwtSecret: string;
  fanout: Fanout;
  /** Stops the bus (NATS drains what is in flight). */
  closeBus(): Promise<void>;
  logger: Logger;
}

export interface GatewayProcess {
  gateway: Gateway;
  /** Sockets first (1001), then the bus. */
  stop(): Promise<void>;
}

async function startGatewayWith(w: Wiring, onGateway: (gateway: Gateway) => void): Promise<GatewayProcess> {
  const { config, logger } = w;
  const auth = createAuthenticator({
    adminToken: w.adminToken,
    jwtSecret: w.jwtSecret,
    defaultTokenTtlSeconds: config.auth.defaultTokenTtlSeconds,
    maxTokenTtlSeconds: config.auth.maxTokenTtlSeconds,
  });
  const remote = createRemoteApi(w.apiUrl, w.adminToken);
  const registry = createApiMetrics().registry;
  const gateway = await startGateway({
    config: config.gateway,
    allowedOrigins: config.api.corsOrigins,
    accessLog: config.accessLog,
    auth,
    tickets: createSocketTickets({ jwtSecret: w.jwtSecret }),
    backend: remote.backend,
    messages: remote.messages,
    fanout: w.fanout,
    metrics: createGatewayMetrics(registry, () => w.fanout.subscriptionCount),
    registry,
    logger,
  });
  onGateway(gateway);
  let stopping: Promise<void> | undefined;
  return {
    gateway,
    stop() {
      stopping ??= (async () => {
        await gateway.close(config.shutdownGraceMs);
        await w.closeBus();
      })();
      return stopping;
    },
  };
}

/** A worker forked by the main process: bus events over IPC (see app/gateway-workers.ts). */
export async function startGatewayWorker(init: WorkerInit, baseLogger: Logger): Promise<GatewayProcess> {
  const logger = baseLogger.child({ worker: init.index });
  const fanout = createIpcFanout(createSubjects(init.config.bus.subjectPrefix), {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  let gateway: Gateway | undefined;
  process.on("message", (m: WorkerResync) => {
    if (m?.type === "resync") gateway?.resyncAll();
  });
  const started = await startGatewayWith(
    { ...init, fanout, closeBus: async () => fanout.close(), logger },
    (g) => (gateway = g),
  );
  process.send!({ type: "ready", addresses: started.gateway.addresses } satisfies WorkerReady);
  return started;
}

/** A gateway on its own host: NATS and the API's address from config (loadConfig checked they are all there). */
export async function startStandaloneGateway(config: Config, logger: Logger): Promise<GatewayProcess> {
  const { apiUrl } = config.gateway;
  const { adminToken, jwtSecret } = config.auth;
  if (config.bus.kind !== "nats" || !apiUrl || !adminToken || !jwtSecret) {
    throw new Error("a standalone gateway needs CHAT_BUS=nats, CHAT_API_URL, CHAT_ADMIN_TOKEN and CHAT_JWT_SECRET");
  }
  let gateway: Gateway | undefined;
  const bus = await connectNats(config, () => createNatsBus({
    servers: config.bus.nats.servers,
    connection: natsConnectionOptions(config.bus.nats),
    name: `chat-gateway-${process.pid}`,
    onHandlerError: (err, subject) => logger.error({ err, subject }, "bus subscriber failed"),
    onDisconnect: () => logger.warn("NATS disconnected"),
    onReconnect: () => {
      logger.info("NATS reconnected");
      gateway?.resyncAll();
    },
  }));
  const fanout = createFanout(bus, createSubjects(config.bus.subjectPrefix), {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  const started = await startGatewayWith(
    { config, apiUrl, adminToken, jwtSecret, fanout, closeBus: () => bus.close(), logger },
    (g) => (gateway = g),
  );
  logger.info(
    { api: apiUrl, gateway: started.gateway.addresses.map((a) => `ws://${a.host}:${a.port}/ws`), bus: config.bus.nats.servers },
    "chat started",
  );
  return started;
}

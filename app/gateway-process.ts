/**
 * A gateway in its own process. Two ways to run one:
 * - forked by the main process (CHAT_GATEWAY_WORKERS): credentials and the
 *   API's address arrive over IPC, and so do bus events;
 * - standalone (role gateway, CHAT_BUS=nats): credentials, CHAT_API_URL and
 *   NATS from config, on any host.
 * Either way it verifies tokens itself, follows the bus, and reads and posts
 * through the API with the admin credential acting for each user.
 */
import { createFanout, type Fanout } from "../bus/fanout.js";
import { createIpcFanout } from "../bus/ipc-bus.js";
import { createNatsBus } from "../bus/nats-bus.js";
import { natsConnectionOptions } from "../bus/nats-options.js";
import { createSubjects } from "../bus/subjects.js";
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import { createApiMetrics, createGatewayMetrics } from "../core/metrics.js";
import { startGateway } from "../gateway/gateway.js";
import { createAuthenticator } from "../chat/auth.js";
import { createRemoteApi } from "../realtime/event-backend.js";
import type { WorkerInit, WorkerReady } from "./gateway-workers.js";

interface Wiring {
  apiUrl: string;
  adminToken: string;
  jwtSecret: string;
  fanout: Fanout;
  /** Stops the bus (NATS drains what is in flight). */
  closeBus(): Promise<void>;
  logger: Logger;
}

async function wiringFromParent(config: Config, baseLogger: Logger, onResync: () => void): Promise<Wiring> {
  process.on("message", (m: { type?: string }) => {
    if (m?.type === "resync") onResync();
  });
  const init = await new Promise<WorkerInit>((resolve) => {
    const on = (m: WorkerInit) => {
      if (m?.type !== "init") return;
      process.off("message", on);
      resolve(m);
    };
    process.on("message", on);
  });
  const logger = baseLogger.child({ worker: init.index });
  const fanout = createIpcFanout(createSubjects(config.bus.subjectPrefix), {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  return { ...init, fanout, closeBus: async () => fanout.close(), logger };
}

async function wiringFromConfig(config: Config, logger: Logger, onReconnect: () => void): Promise<Wiring> {
  // loadConfig guarantees these for role gateway with CHAT_BUS=nats.
  const { apiUrl } = config.gateway;
  const { adminToken, jwtSecret } = config.auth;
  if (config.bus.kind !== "nats" || !apiUrl || !adminToken || !jwtSecret) {
    throw new Error("a standalone gateway needs CHAT_BUS=nats, CHAT_API_URL, CHAT_ADMIN_TOKEN and CHAT_JWT_SECRET");
  }
  const bus = await createNatsBus({
    servers: config.bus.nats.servers,
    connection: natsConnectionOptions(config.bus.nats),
    name: `chat-gateway-${process.pid}`,
    onHandlerError: (err, subject) => logger.error({ err, subject }, "bus subscriber failed"),
    onDisconnect: () => logger.warn("NATS disconnected"),
    onReconnect: () => {
      logger.info("NATS reconnected");
      onReconnect();
    },
  });
  const fanout = createFanout(bus, createSubjects(config.bus.subjectPrefix), {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  return { apiUrl, adminToken, jwtSecret, fanout, closeBus: () => bus.close(), logger };
}

export async function runGatewayProcess(config: Config, baseLogger: Logger): Promise<void> {
  const forked = typeof process.send === "function";
  let resync = () => {};
  const { apiUrl, adminToken, jwtSecret, fanout, closeBus, logger } = forked
    ? await wiringFromParent(config, baseLogger, () => resync())
    : await wiringFromConfig(config, baseLogger, () => resync());
  const auth = createAuthenticator({
    adminToken,
    jwtSecret,
    defaultTokenTtlSeconds: config.auth.defaultTokenTtlSeconds,
    maxTokenTtlSeconds: config.auth.maxTokenTtlSeconds,
  });
  const remote = createRemoteApi(apiUrl, adminToken);
  const registry = createApiMetrics().registry;
  const gateway = await startGateway({
    config: config.gateway,
    auth,
    backend: remote.backend,
    messages: remote.messages,
    fanout,
    metrics: createGatewayMetrics(registry, () => fanout.subscriptionCount),
    registry,
    logger,
  });
  resync = () => gateway.resyncAll();
  if (forked) process.send!({ type: "ready", addresses: gateway.addresses } satisfies WorkerReady);
  else {
    logger.info(
      { api: apiUrl, gateway: gateway.addresses.map((a) => `ws://${a.host}:${a.port}/ws`), bus: config.bus.nats.servers },
      "chat started",
    );
  }

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, "gateway stopping");
    await gateway.close();
    await closeBus();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // A forked gateway without its parent has no bus: stop rather than serve stale sockets.
  if (forked) process.on("disconnect", () => void stop("parent gone"));
}

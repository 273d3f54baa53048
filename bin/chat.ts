/**
 * The chat program. One binary, several roles (CHAT_ROLE or --role):
 * - `all` (default): single node, the API (embedded store, in-process bus) and
 *   the WebSocket gateway, in this process or in CHAT_GATEWAY_WORKERS forks;
 * - `api`: the API alone;
 * - `gateway`: a gateway process; for now only as a worker forked by `all`
 *   (a standalone gateway needs a bus that crosses hosts: NATS).
 */
import { ConfigError, loadConfig, type Config } from "../core/config.js";
import { createLogger } from "../core/logger.js";
import { startApi } from "../app/api-node.js";
import { runGatewayProcess } from "../app/gateway-process.js";
import { startGatewayWorkers } from "../app/gateway-workers.js";
import { startChatNode } from "../app/single-node.js";

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, { role: config.role, node: config.nodeId });
  // A bug that escapes every handler leaves the process in an unknown state:
  // log it and exit non-zero so the supervisor restarts a clean one.
  const die = (kind: string) => (err: unknown) => {
    logger.fatal({ err }, kind);
    logger.flush();
    process.exit(1);
  };
  process.on("uncaughtException", die("uncaught exception"));
  process.on("unhandledRejection", die("unhandled promise rejection"));
  if (config.role === "gateway") {
    if (!process.send && config.bus.kind !== "nats") {
      logger.fatal("a gateway in its own process needs CHAT_BUS=nats (or runs as a worker: CHAT_GATEWAY_WORKERS in role all)");
      process.exit(2);
    }
    await runGatewayProcess(config, logger);
    return;
  }

  let started: { api: string; gateway: string[]; stop: () => Promise<void> };
  if (config.role === "api") {
    const api = await startApi({ config, logger });
    started = { api: api.server.url, gateway: [], stop: () => api.stop() };
  } else if (config.gateway.workers > 0) {
    const api = await startApi({ config, logger });
    const workers = await startGatewayWorkers(config, api, logger);
    started = {
      api: api.server.url,
      gateway: workers.addresses.map((a) => `ws://${a.host}:${a.port}/ws`),
      stop: async () => {
        await workers.stop();
        await api.stop();
      },
    };
  } else {
    const node = await startChatNode({ config, logger });
    started = {
      api: node.api.server.url,
      gateway: node.gateway.addresses.map((a) => `ws://${a.host}:${a.port}/ws`),
      stop: () => node.stop(),
    };
  }
  logger.info(
    { dataDir: config.dataDir, api: started.api, gateway: started.gateway, gatewayWorkers: config.gateway.workers },
    "chat started",
  );
  const stop = started.stop;

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    logger.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down");
    stop().then(
      () => {
        logger.info("stopped");
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

main().catch((err: unknown) => {
  process.stderr.write(`chat failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

/**
 * The chat program. One binary, several roles (CHAT_ROLE or --role):
 * `all` (default, single node: API with the embedded store and in-process bus),
 * `api`, `gateway`.
 */
import { ConfigError, loadConfig, type Config } from "../core/config.js";
import { createLogger } from "../core/logger.js";
import { startChatNode } from "./node.js";

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
  if (config.role !== "all") {
    // Separate api and gateway processes need a bus that crosses processes (NATS).
    logger.fatal({ role: config.role }, "only role 'all' is available until the NATS bus lands (CHAT_BUS=nats)");
    process.exit(2);
  }
  const node = await startChatNode({ config, logger });
  logger.info(
    {
      dataDir: config.dataDir,
      api: node.api.server.url,
      gateway: node.gateway.addresses.map((a) => `ws://${a.host}:${a.port}/ws`),
    },
    "chat started",
  );
  const stop = () => node.stop();

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

/**
 * The chat program. One binary, several roles (CHAT_ROLE or --role):
 * - `all` (default): single node, the API (embedded store, in-process bus) and
 *   the WebSocket gateway, in this process or in CHAT_GATEWAY_WORKERS forks
 *   (bin/gateway-worker.ts);
 * - `api`: the API alone;
 * - `gateway`: a gateway on its own (CHAT_BUS=nats and CHAT_API_URL).
 */
import { startApi } from "../app/api-node.js";
import { startStandaloneGateway } from "../app/gateway-process.js";
import { startGatewayWorkers } from "../app/gateway-workers.js";
import { startChatNode } from "../app/single-node.js";
import { ConfigError, loadConfig, type Config } from "../core/config.js";
import { createLogger, type Logger } from "../core/logger.js";
import { exitOnUncaught, exitStartupFailed, stopOnSignals } from "./lifecycle.js";

function configOrExit(warnings: string[]): Config {
  try {
    return loadConfig({ onWarning: (message) => warnings.push(message) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}

async function startRole(config: Config, logger: Logger): Promise<() => Promise<void>> {
  if (config.role === "gateway") {
    const gateway = await startStandaloneGateway(config, logger);
    return () => gateway.stop();
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
  return started.stop;
}

async function main(): Promise<void> {
  const warnings: string[] = [];
  const config = configOrExit(warnings);
  const logger = createLogger(config.logLevel, { role: config.role, node: config.nodeId });
  for (const message of warnings) logger.warn(message);
  exitOnUncaught(logger);
  let stop: () => Promise<void>;
  try {
    stop = await startRole(config, logger);
  } catch (err) {
    exitStartupFailed(logger, err);
  }
  stopOnSignals(logger, stop, { graceMs: config.shutdownGraceMs });
}

main().catch((err: unknown) => {
  process.stderr.write(`chat failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

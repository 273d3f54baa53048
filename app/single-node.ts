/**
 * Composition root of one process in single-node mode: the API (store, bus,
 * services on the API port) and the WebSocket gateway on the same bus.
 * `bin/chat.ts` and the tests start the system through here.
 */
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import { createGatewayMetrics } from "../core/metrics.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { startApi, type RunningApi } from "./api-node.js";

export interface ChatNode {
  api: RunningApi;
  gateway: Gateway;
  /** Gateway first (clients get 1001 and reconnect elsewhere), then the API drains. */
  stop(): Promise<void>;
}

export async function startChatNode(options: { config: Config; logger: Logger; defaultMetrics?: boolean }): Promise<ChatNode> {
  const { config, logger } = options;
  const api = await startApi(options);
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      config: config.gateway,
    allowedOrigins: config.api.corsOrigins,
    accessLog: config.accessLog,
      auth: api.auth,
      tickets: api.handlers.tickets,
      backend: api.eventBackend,
      messages: api.handlers.messages,
      fanout: api.fanout,
      metrics: createGatewayMetrics(api.metrics.registry, () => api.fanout.subscriptionCount),
      registry: api.metrics.registry,
      logger,
    });
  } catch (err) {
    await api.stop();
    throw err;
  }
  api.busEvents.on("reconnect", () => gateway.resyncAll());
  let stopping: Promise<void> | undefined;
  return {
    api,
    gateway,
    stop() {
      stopping ??= (async () => {
        await gateway.close(config.shutdownGraceMs);
        await api.stop();
      })();
      return stopping;
    },
  };
}

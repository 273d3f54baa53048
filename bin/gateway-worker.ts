/**
 * A gateway process forked by the main process (CHAT_GATEWAY_WORKERS): it
 * verifies tokens itself, follows the bus over IPC, and reads and posts
 * through the API with the admin credential acting for each user.
 */
import { createFanout } from "../bus/fanout.js";
import { createIpcBus } from "../bus/ipc-bus.js";
import { createSubjects } from "../bus/subjects.js";
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import { createGatewayMetrics, createApiMetrics } from "../core/metrics.js";
import { startGateway } from "../gateway/gateway.js";
import { createAuthenticator } from "../services/auth.js";
import { createRemoteApi } from "../services/event-backend.js";
import type { WorkerInit, WorkerReady } from "./gateway-workers.js";

export async function runGatewayWorker(config: Config, logger: Logger): Promise<void> {
  const init = await new Promise<WorkerInit>((resolve) => {
    const on = (m: WorkerInit) => {
      if (m?.type !== "init") return;
      process.off("message", on);
      resolve(m);
    };
    process.on("message", on);
  });
  const auth = createAuthenticator({
    adminToken: init.adminToken,
    jwtSecret: init.jwtSecret,
    defaultTokenTtlSeconds: config.auth.defaultTokenTtlSeconds,
    maxTokenTtlSeconds: config.auth.maxTokenTtlSeconds,
  });
  const bus = createIpcBus();
  const fanout = createFanout(bus, createSubjects(config.bus.subjectPrefix), {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  const remote = createRemoteApi(init.apiUrl, init.adminToken);
  const registry = createApiMetrics().registry;
  const gateway = await startGateway({
    config: config.gateway,
    auth,
    backend: remote.backend,
    messages: remote.messages,
    fanout,
    metrics: createGatewayMetrics(registry, () => fanout.subscriptionCount),
    registry,
    logger: logger.child({ worker: init.index }),
  });
  process.send!({ type: "ready", addresses: gateway.addresses } satisfies WorkerReady);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, "gateway worker stopping");
    await gateway.close();
    await bus.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // Without its parent there is no bus: stop rather than serve stale sockets.
  process.on("disconnect", () => void stop("parent gone"));
}

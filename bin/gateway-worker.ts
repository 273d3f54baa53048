/**
 * A gateway worker forked by the main process (CHAT_GATEWAY_WORKERS): its
 * settings, credentials and the API's address arrive in the first IPC
 * message, never from the environment (app/gateway-workers.ts sends them).
 */
import { startGatewayWorker, type WorkerInit } from "../app/gateway-process.js";
import { createLogger } from "../core/logger.js";
import { exitOnUncaught, exitStartupFailed, stopOnSignals } from "./lifecycle.js";

if (!process.send) {
  process.stderr.write("bin/gateway-worker.js is started by the chat program (CHAT_GATEWAY_WORKERS), not by hand\n");
  process.exit(2);
}

const init = await new Promise<WorkerInit>((resolve) => {
  const onMessage = (m: WorkerInit) => {
    if (m?.type !== "init") return;
    process.off("message", onMessage);
    resolve(m);
  };
  process.on("message", onMessage);
});
const logger = createLogger(init.config.logLevel, { role: "gateway", node: init.config.nodeId });
exitOnUncaught(logger);
try {
  const worker = await startGatewayWorker(init, logger);
  const stop = stopOnSignals(logger, () => worker.stop());
  // Without its parent a worker has no bus: stop rather than serve stale sockets.
  process.on("disconnect", () => stop("parent gone"));
} catch (err) {
  exitStartupFailed(logger, err);
}

/**
 * CHAT_GATEWAY_WORKERS: the main process (API, store, bus) forks N gateway
 * processes (bin/gateway-worker.ts) that listen on the same addresses
 * (uWebSockets.js binds with SO_REUSEPORT, so the kernel spreads
 * connections), each with its own bus subscriptions served over IPC, and
 * restarts one that dies.
 *
 * Settings and secrets go to workers in the first IPC message, never through
 * the environment.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createWorkerBridge } from "../bus/ipc-bus.js";
import type { Config } from "../core/config.js";
import { freePort } from "../core/net.js";
import type { Logger } from "../core/logger.js";
import type { RunningApi } from "./api-node.js";
import type { WorkerInit, WorkerReady, WorkerResync } from "./gateway-process.js";

export interface GatewayWorkers {
  /** Addresses the workers listen on (the first worker's report). */
  readonly addresses: Array<{ host: string; port: number }>;
  readonly pids: number[];
  stop(): Promise<void>;
}

const WORKER_ENTRY = fileURLToPath(new URL("../bin/gateway-worker.js", import.meta.url));

export async function startGatewayWorkers(config: Config, api: RunningApi, logger: Logger): Promise<GatewayWorkers> {
  const workers: Array<ChildProcess | undefined> = [];
  const bridge = createWorkerBridge(api.bus);
  let stopping = false;
  let addresses: Array<{ host: string; port: number }> = [];

  // Workers share each port through SO_REUSEPORT, which uSockets does not set
  // on port 0: resolve port 0 to one free port first, for all of them.
  const listen = await Promise.all(config.gateway.listen.map(async (a) => ({ host: a.host, port: a.port || (await freePort(a.host)) })));
  const workerConfig: Config = { ...config, role: "gateway", gateway: { ...config.gateway, listen } };

  const spawn = (index: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(WORKER_ENTRY, [], {
        serialization: "advanced",
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      workers[index] = child;
      bridge.attach(child);
      const onReady = (m: WorkerReady) => {
        if (m?.type !== "ready") return;
        child.off("message", onReady);
        if (addresses.length === 0) addresses = m.addresses;
        logger.info({ worker: index, pid: child.pid }, "gateway worker ready");
        resolve();
      };
      child.on("message", onReady);
      child.once("exit", (code, signal) => {
        workers[index] = undefined;
        if (stopping) return;
        logger.error({ worker: index, code, signal }, "gateway worker exited; restarting it");
        reject(new Error(`gateway worker ${index} exited (${code ?? signal}) before it was ready`));
        setTimeout(() => {
          if (!stopping) spawn(index).catch((err: unknown) => logger.error({ err, worker: index }, "gateway worker restart failed"));
        }, 500);
      });
      child.send({
        type: "init",
        config: workerConfig,
        apiUrl: api.server.url,
        adminToken: api.secrets.adminToken,
        jwtSecret: api.secrets.jwtSecret,
        index,
      } satisfies WorkerInit);
    });

  await Promise.all(Array.from({ length: config.gateway.workers }, (_, i) => spawn(i)));

  // The main process's bus lost its connection: the workers' sockets may have missed events.
  api.busEvents.on("reconnect", () => {
    for (const w of workers) if (w?.connected) w.send({ type: "resync" } satisfies WorkerResync);
  });

  return {
    get addresses() {
      return addresses;
    },
    get pids() {
      return workers.flatMap((w) => (w?.pid === undefined ? [] : [w.pid]));
    },
    async stop() {
      stopping = true;
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (!w || w.exitCode !== null) return resolve();
              w.once("exit", () => resolve());
              w.kill("SIGTERM");
            }),
        ),
      );
    },
  };
}

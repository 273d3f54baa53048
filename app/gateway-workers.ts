/**
 * CHAT_GATEWAY_WORKERS: the main process (API, store, bus) forks N gateway
 * processes that listen on the same addresses (uWebSockets.js binds with
 * SO_REUSEPORT, so the kernel spreads connections), each with its own bus
 * subscriptions served over IPC, and restarts one that dies.
 *
 * Secrets go to workers over the IPC channel, not the environment.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createWorkerBridge } from "../bus/ipc-bus.js";
import type { Config } from "../core/config.js";
import { freePort } from "../core/net.js";
import type { Logger } from "../core/logger.js";
import type { RunningApi } from "./api-node.js";

export interface WorkerInit {
  type: "init";
  apiUrl: string;
  adminToken: string;
  jwtSecret: string;
  index: number;
}

export interface WorkerReady {
  type: "ready";
  addresses: Array<{ host: string; port: number }>;
}

export interface GatewayWorkers {
  /** Addresses the workers listen on (the first worker's report). */
  readonly addresses: Array<{ host: string; port: number }>;
  readonly pids: number[];
  stop(): Promise<void>;
}

const CHAT_ENTRY = fileURLToPath(new URL("../bin/chat.js", import.meta.url));

export async function startGatewayWorkers(config: Config, api: RunningApi, logger: Logger): Promise<GatewayWorkers> {
  const workers: Array<ChildProcess | undefined> = [];
  const bridge = createWorkerBridge(api.bus);
  let stopping = false;
  let addresses: Array<{ host: string; port: number }> = [];

  const spawn = (index: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(CHAT_ENTRY, [], {
        env: { ...process.env, CHAT_ROLE: "gateway" },
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
        apiUrl: api.server.url,
        adminToken: api.secrets.adminToken,
        jwtSecret: api.secrets.jwtSecret,
        index,
      } satisfies WorkerInit);
    });

  // Workers share each port through SO_REUSEPORT, which uSockets does not set
  // on port 0: resolve port 0 to one free port first, for all of them.
  if (config.gateway.listen.some((a) => a.port === 0)) {
    const listen = await Promise.all(config.gateway.listen.map(async (a) => ({ host: a.host, port: a.port || (await freePort(a.host)) })));
    process.env.CHAT_GATEWAY_LISTEN = listen.map((a) => `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`).join(",");
  }
  await Promise.all(Array.from({ length: config.gateway.workers }, (_, i) => spawn(i)));

  // The main process's bus lost its connection: the workers' sockets may have missed events.
  api.busEvents.on("reconnect", () => {
    for (const w of workers) if (w?.connected) w.send({ type: "resync" });
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

/**
 * A load-generator process of the scenario runner (or the same logic inside
 * the runner's process when WORKERS=0). It imports the scenario module, runs
 * setupWorker(), then its share of the executor from the start instant the
 * runner gives, sends metric deltas every 250 ms, and on close runs
 * teardownWorker() and returns its report. Controlled over IPC:
 *
 *   runner → worker: init {scenario, info, data} | start {startAt} | stop | close
 *   worker → runner: ready | metrics | iterations-done | closed (each with a metrics delta) | error
 */
import { pathToFileURL } from "node:url";
import { runExecutor } from "./scenario-executors.js";
import { builtin, now, registry, type MetricsDelta } from "./scenario-metrics.js";
import type { ScenarioModule, WorkerInfo } from "./scenario.js";

export type ToWorker =
  | { type: "init"; scenario: string; info: WorkerInfo; data: unknown }
  | { type: "start"; startAt: number }
  | { type: "stop" }
  | { type: "close" };

export type FromWorker =
  | { type: "ready"; t: number; delta: MetricsDelta }
  | { type: "metrics"; t: number; spanMs: number; delta: MetricsDelta }
  | { type: "iterations-done"; t: number; delta: MetricsDelta; interrupted: number; cpuMs: number; wallMs: number }
  | { type: "closed"; t: number; delta: MetricsDelta; report: unknown }
  | { type: "error"; message: string };

export const FLUSH_MS = 250;

export function createWorkerHost(send: (m: FromWorker) => void): { handle(m: ToWorker): Promise<void> } {
  let mod: ScenarioModule | undefined;
  let info: WorkerInfo | undefined;
  let data: unknown;
  const stop = new AbortController();
  let flusher: NodeJS.Timeout | undefined;
  let flushing = true;
  let running: Promise<void> | undefined;

  const fail = (err: unknown) => send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });

  return {
    async handle(m) {
      try {
        switch (m.type) {
          case "init": {
            mod = (await import(m.scenario)) as ScenarioModule;
            info = m.info;
            data = m.data;
            await mod.setupWorker?.(data, info);
            send({ type: "ready", t: now(), delta: registry.take() });
            break;
          }
          case "start": {
            const scenario = mod!;
            const worker = info!;
            // Flush on a fixed grid (startAt + k x FLUSH_MS), so that timer drift does not pile up.
            let k = 1;
            let last = m.startAt;
            const schedule = () => {
              if (!flushing) return;
              const due = m.startAt + k * FLUSH_MS;
              flusher = setTimeout(() => {
                const t = now();
                send({ type: "metrics", t, spanMs: t - last, delta: registry.take() });
                last = t;
                k = Math.max(k + 1, Math.ceil((t - m.startAt) / FLUSH_MS));
                schedule();
              }, Math.max(0, due - now()));
            };
            schedule();
            // Event-loop delay of this process, sampled every 20 ms while it runs.
            const probe = (expected: number) => {
              if (!flushing) return;
              const t = now();
              if (t >= m.startAt) builtin.workerLoopDelay.add(Math.max(0, t - expected));
              const next = t + 20;
              setTimeout(() => probe(next), 20);
            };
            probe(now());
            running = (async () => {
              const cpu0 = process.cpuUsage();
              const wall0 = now();
              const run = await runExecutor(scenario.options, (vu) => scenario.default(data, vu), worker, m.startAt, stop.signal);
              const cpu = process.cpuUsage(cpu0);
              send({
                type: "iterations-done",
                t: now(),
                delta: registry.take(),
                interrupted: run.interrupted,
                cpuMs: (cpu.user + cpu.system) / 1000,
                wallMs: now() - Math.max(wall0, m.startAt),
              });
            })().catch(fail);
            break;
          }
          case "stop":
            stop.abort();
            break;
          case "close": {
            stop.abort();
            await running;
            flushing = false;
            if (flusher) clearTimeout(flusher);
            const report = await mod?.teardownWorker?.(data, info!);
            send({ type: "closed", t: now(), delta: registry.take(), report: report ?? null });
            break;
          }
        }
      } catch (err) {
        fail(err);
      }
    },
  };
}

// As a child process: wire the host to IPC.
const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain && process.send) {
  const host = createWorkerHost((m) => process.send!(m));
  process.on("message", (m: ToWorker) => void host.handle(m));
  // The runner disconnects once it has the "closed" message (or when it exits).
  process.on("disconnect", () => process.exit(0));
  process.on("unhandledRejection", (err) => console.error("[worker] unhandled rejection:", err));
}

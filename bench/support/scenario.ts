/**
 * What a scenario file imports: k6-shaped options, metrics, check(), the VU
 * and setup contexts, environment helpers. See bench/scenarios/runner.ts for
 * how a scenario module is run, and bench/README.md ("Scenarios").
 */
import type { ConnectJson } from "./connect-json.js";

export { Counter, Gauge, Rate, Trend, check, now } from "./scenario-metrics.js";
export type { TrendStats } from "./scenario-metrics.js";

/** A threshold as k6 writes it: "p(99)<10", or with abortOnFail. */
export type Threshold = string | { threshold: string; abortOnFail?: boolean; delayAbortEval?: string };

export interface Stage {
  duration: string;
  target: number;
}

/** The executor and its parameters, as in one k6 scenario. Durations as "30s", "1m30s", "500ms". */
export type ExecutorOptions =
  | { executor: "constant-vus"; vus: number; duration: string }
  | { executor: "ramping-vus"; startVUs?: number; stages: Stage[]; gracefulRampDown?: string }
  | { executor: "constant-arrival-rate"; rate: number; timeUnit?: string; duration: string; preAllocatedVUs: number; maxVUs?: number }
  | { executor: "shared-iterations"; vus: number; iterations: number; maxDuration?: string };

export type Options = ExecutorOptions & {
  /** Time given to running iterations after the end (k6 default 30s; here 10s). */
  gracefulStop?: string;
  /** Load-generator processes; 0 runs the iterations in the runner's own process. Default 1. */
  workers?: number;
  /** After the iterations: wait up to this long until the scenario's drained() says true. */
  drainTimeout?: string;
  thresholds?: Record<string, Threshold[]>;
  /** Extra environment for the server when the runner starts it itself. */
  server?: { env?: Record<string, string> };
  setupTimeout?: string;
  teardownTimeout?: string;
};

export interface WorkerInfo {
  /** 0-based index of this load-generator process. */
  index: number;
  /** Number of load-generator processes. */
  count: number;
  api: string;
  ws: string;
  runId: string;
}

/** The virtual user running an iteration (k6's exec.vu plus exec.scenario). */
export interface VU {
  /** 1-based, unique over all worker processes. */
  id: number;
  /** This VU's iteration number, from 0. */
  iteration: number;
  /** Unique over all VUs and workers (arrival-rate: the k-th scheduled iteration of the test). */
  iterationInTest: number;
  /** Aborted when the VU should wrap up: end of the duration, ramp-down, or an abort. */
  signal: AbortSignal;
  /** Per-VU scratch space kept across iterations (connections, clients). */
  state: Record<string, unknown>;
  worker: WorkerInfo;
}

export interface SetupContext {
  api: string;
  ws: string;
  adminToken: string;
  /** Connect JSON client for the API (the admin token goes per call). */
  http: ConnectJson;
  runId: string;
  selfStarted: boolean;
  log(message: string): void;
}

/** Merged metrics, for drained() and finalize(). */
export interface Totals {
  counter(name: string): number;
  rate(name: string): number;
  gauge(name: string): number;
  trendCount(name: string): number;
  /** Seconds since the iterations started. */
  elapsedSeconds: number;
}

/** The shape of a scenario module. */
export interface ScenarioModule<D = unknown> {
  options: Options;
  setup?(ctx: SetupContext): Promise<D> | D;
  setupWorker?(data: D, worker: WorkerInfo): Promise<void> | void;
  default(data: D, vu: VU): Promise<void> | void;
  teardownWorker?(data: D, worker: WorkerInfo): Promise<unknown> | unknown;
  drained?(totals: Totals): boolean;
  /** Extra counters computed once everything is merged (e.g. lost deliveries); thresholds see them. */
  finalize?(totals: Totals, workerReports: unknown[], data: D): Record<string, number>;
  teardown?(data: D, ctx: SetupContext): Promise<void> | void;
}

/** "1m30s", "500ms", "2h", "10" (seconds) → milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of t.matchAll(re)) {
    const n = Number(m[1]);
    total += m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : m[2] === "m" ? n * 60_000 : n * 3_600_000;
    consumed += m[0].length;
  }
  if (consumed !== t.length || t.length === 0) throw new Error(`not a duration: ${JSON.stringify(text)} (e.g. 30s, 1m30s, 500ms)`);
  return total;
}

export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 1000 === 0) {
    const m = Math.floor(ms / 60_000);
    const s = (ms % 60_000) / 1000;
    return s ? `${m}m${s}s` : `${m}m`;
  }
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The environment variables a scenario read (name → value or default), recorded in the results. */
export const envUsed = new Map<string, string>();
function note(name: string, fallback: unknown): void {
  envUsed.set(name, process.env[name] ?? `${String(fallback)} (default)`);
}

/** An integer from the environment, or the default. */
export function envInt(name: string, fallback: number): number {
  note(name, fallback);
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v.replace(/_/g, ""));
  if (!Number.isFinite(n)) throw new Error(`${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export function envString(name: string, fallback: string): string {
  note(name, fallback);
  const v = process.env[name];
  return v === undefined || v === "" ? fallback : v;
}

/** A duration from the environment ("30s"), checked, or the default. */
export function envDuration(name: string, fallback: string): string {
  const v = envString(name, fallback);
  parseDuration(v);
  return v;
}

export function envBool(name: string, fallback: boolean): boolean {
  note(name, fallback);
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  return !["0", "false", "no", "off"].includes(v.toLowerCase());
}

/** Sleeps; resolves early (without throwing) when signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Runs fn over items with at most `concurrency` in flight; results in order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

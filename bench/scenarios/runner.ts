/**
 * Scenario runner: a small, dependency-free stand-in for k6 (k6 is under the
 * AGPL, which our package policy rules out). A scenario module exports k6-like
 * `options` (executor, thresholds), `setup()`, the per-iteration default
 * function and a few optional hooks (see bench/support/scenario.ts); the runner
 *
 *   1. starts the chat system itself (role all, SQLite in a temporary folder)
 *      unless CHAT_TARGET_API names a running one (loopback only);
 *   2. runs setup() once (users, tokens, channels through the API);
 *   3. forks WORKERS load-generator processes (bench/support/scenario-worker.ts)
 *      that run setupWorker() and their share of the executor from one shared
 *      start instant, streaming metric deltas every 250 ms;
 *   4. waits for drained() (e.g. every delivery arrived), runs the teardowns,
 *      finalize() and the thresholds;
 *   5. prints a k6-like summary, writes bench/results/scenario-<name>-<timestamp>.json
 *      and an SVG chart next to it, and exits 99 when a threshold failed.
 *
 * Run (builds first): npm run bench:scenario -- <name|path to compiled .js>
 *   e.g. VUS=50 DURATION=20s npm run bench:scenario -- bots-grpc
 *
 * Environment (each scenario reads more; see its header):
 *   CHAT_TARGET_API   http://127.0.0.1:8080  a running API; unset: start one (and stop it at the end)
 *   CHAT_TARGET_WS    ws://127.0.0.1:8081/ws the running gateway (default: API host, port 8081)
 *   CHAT_ADMIN_TOKEN  the running deployment's admin token (required with CHAT_TARGET_API)
 *   WORKERS           load-generator processes (0: in the runner's process); default per scenario
 *   THRESHOLDS        JSON that replaces thresholds per metric, e.g. '{"checks":["rate>0.99"]}'
 *   MAX_RUNTIME       hard timeout for the whole run (default: 5m + twice the planned duration)
 *   RESULTS_DIR       where JSON and SVG go (default bench/results)
 *   Self-started server: every other CHAT_* variable is passed to it (e.g. CHAT_GATEWAY_WORKERS=2).
 *
 * Exit codes (k6's): 0 ok, 99 a threshold failed, 102 hard timeout, 104 bad
 * configuration (e.g. a non-loopback target), 105 interrupted, 107 the scenario threw.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { connectJson } from "../support/connect-json.js";
import { machineInfo } from "../support/machine.js";
import { describeExecutor, plannedMs } from "../support/scenario-executors.js";
import { now, registry, type MetricsDelta } from "../support/scenario-metrics.js";
import { Aggregator, evaluateThreshold, formatMs, parseThresholds, renderSummary, type ParsedThreshold, type ThresholdOutcome } from "../support/scenario-results.js";
import { createWorkerHost, type FromWorker, type ToWorker } from "../support/scenario-worker.js";
import { newRunId } from "../support/scenario-seed.js";
import { envInt, envUsed, formatDuration, parseDuration, type Options, type ScenarioModule, type SetupContext, type Threshold, type WorkerInfo } from "../support/scenario.js";
import { renderChart, type BarGroup, type LinePanel } from "../support/svg-chart.js";

const EXIT = { ok: 0, thresholds: 99, timeout: 102, config: 104, interrupted: 105, script: 107 } as const;
const here = path.dirname(fileURLToPath(import.meta.url));

class ConfigError extends Error {}

/** What this runner started, so that every way out stops it. */
const started: { server?: ChatProcess; dataDir?: string; children: ChildProcess[] } = { children: [] };

async function stopStarted(): Promise<void> {
  for (const c of started.children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  const server = started.server;
  started.server = undefined;
  if (server && server.child.exitCode === null) {
    server.child.kill("SIGTERM");
    const exited = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r("timeout"), 15_000))]);
    if (exited === "timeout") server.child.kill("SIGKILL");
  }
  if (started.dataDir) rmSync(started.dataDir, { recursive: true, force: true });
  started.dataDir = undefined;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** The repository root: the nearest folder up with this project's package.json. */
function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "chat-backend") return dir;
    if (path.dirname(dir) === dir) throw new ConfigError("cannot find the chat-backend repository root");
  }
}

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

function loopbackUrl(name: string, value: string, protocols: string[]): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(`${name}: not a URL: ${value}`);
  }
  if (!protocols.includes(u.protocol)) throw new ConfigError(`${name}: expected ${protocols.join(" or ")}, got ${u.protocol}`);
  if (!isLoopbackHost(u.hostname)) throw new ConfigError(`${name}: ${u.hostname} is not loopback; this runner only loads 127.0.0.0/8 or localhost`);
  return value.replace(/\/$/, "");
}

function redact(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = /TOKEN|SECRET|PASSWORD|CREDS/.test(k) ? "(redacted)" : v;
  return out;
}

function versions(root: string): Record<string, string> {
  const out: Record<string, string> = { node: process.version };
  const read = (p: string) => (JSON.parse(readFileSync(p, "utf8")) as { version?: string }).version ?? "?";
  try {
    out["chat-backend"] = read(path.join(root, "package.json"));
  } catch {
    // no package.json version
  }
  for (const dep of ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "@grpc/grpc-js", "@grpc/proto-loader", "uWebSockets.js", "better-sqlite3", "nats", "typescript"]) {
    try {
      out[dep] = read(path.join(root, "node_modules", dep, "package.json"));
    } catch {
      // not installed
    }
  }
  return out;
}

/** utime + stime of a process, in milliseconds (Linux /proc; clock ticks of 10 ms). */
function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Linux pressure stall information: microseconds during which some task waited for a CPU (cumulative). */
function cpuStallUs(): number | undefined {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${formatMs(ms)}`)), ms))),
  ]);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

interface WorkerHandle {
  index: number;
  child?: ChildProcess;
  send(m: ToWorker): void;
  ready: Deferred<void>;
  done: Deferred<{ interrupted: number; cpuMs: number; wallMs: number }>;
  closed: Deferred<unknown>;
}

async function main(): Promise<number> {
  const root = findRoot(here);
  process.chdir(root);
  const arg = process.argv[2];
  if (!arg || arg === "--help" || arg === "-h") {
    log("usage: npm run bench:scenario -- <connections|messaging|bots-grpc|history|path/to/scenario.js>");
    return EXIT.config;
  }
  const file = arg.includes("/") || arg.endsWith(".js") ? path.resolve(arg) : path.join(here, `${arg}.js`);
  if (!existsSync(file)) throw new ConfigError(`no scenario ${arg} (looked for ${file}; run npm run build first)`);
  const name = path.basename(file, ".js");
  const scenarioUrl = pathToFileURL(file).href;
  const mod = (await import(scenarioUrl)) as ScenarioModule;
  if (typeof mod.default !== "function" || !mod.options) throw new ConfigError(`${file}: a scenario exports options and a default function`);

  // Options, with the runner's own overrides.
  const options: Options = { ...mod.options };
  const workers = envInt("WORKERS", options.workers ?? 1);
  options.workers = workers;
  if (process.env.THRESHOLDS) {
    try {
      options.thresholds = { ...options.thresholds, ...(JSON.parse(process.env.THRESHOLDS) as Record<string, Threshold[]>) };
    } catch (err) {
      throw new ConfigError(`THRESHOLDS: not JSON: ${String(err)}`);
    }
  }
  const agg = new Aggregator();
  let thresholds: ParsedThreshold[];
  try {
    thresholds = parseThresholds(options.thresholds ?? {}, agg.kinds);
    plannedMs(options);
    parseDuration(options.gracefulStop ?? "10s");
    parseDuration(options.drainTimeout ?? "0s");
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const gracefulStopMs = parseDuration(options.gracefulStop ?? "10s");
  const drainMs = parseDuration(options.drainTimeout ?? "0s");
  const setupTimeoutMs = parseDuration(options.setupTimeout ?? process.env.SETUP_TIMEOUT ?? "5m");
  const teardownTimeoutMs = parseDuration(options.teardownTimeout ?? "2m");
  const planned = plannedMs(options);
  const maxRuntimeMs = process.env.MAX_RUNTIME ? parseDuration(process.env.MAX_RUNTIME) : 300_000 + 2 * (planned + gracefulStopMs + drainMs);

  // Target: a running deployment (loopback only) or one we start.
  let server: ChatProcess | undefined;
  let dataDir: string | undefined;
  let api: string;
  let ws: string;
  let adminToken: string;
  let serverEnv: Record<string, string> = {};
  if (process.env.CHAT_TARGET_API) {
    api = loopbackUrl("CHAT_TARGET_API", process.env.CHAT_TARGET_API, ["http:"]);
    const apiHost = new URL(api).hostname;
    ws = loopbackUrl("CHAT_TARGET_WS", process.env.CHAT_TARGET_WS ?? `ws://${apiHost}:8081/ws`, ["ws:"]);
    if (!process.env.CHAT_ADMIN_TOKEN) throw new ConfigError("CHAT_ADMIN_TOKEN: required with CHAT_TARGET_API (setup creates users and tokens)");
    adminToken = process.env.CHAT_ADMIN_TOKEN;
  } else {
    if (process.env.CHAT_TARGET_WS) throw new ConfigError("CHAT_TARGET_WS without CHAT_TARGET_API: set both, or neither to start the system here");
    if (!existsSync(path.join(root, "dist/bin/chat.js"))) throw new ConfigError("dist/bin/chat.js is missing: npm run build");
    dataDir = mkdtempSync(path.join(os.tmpdir(), "chat-scenario-"));
    started.dataDir = dataDir;
    adminToken = process.env.CHAT_ADMIN_TOKEN ?? `scenario-admin-${randomBytes(16).toString("hex")}`;
    const forwarded = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith("CHAT_") && !k.startsWith("CHAT_TARGET_") && v !== undefined)) as Record<
      string,
      string
    >;
    serverEnv = { CHAT_DATA_DIR: dataDir, CHAT_LOG_LEVEL: "info", ...options.server?.env, ...forwarded, CHAT_ADMIN_TOKEN: adminToken };
    log(`starting the chat system (role all, SQLite in ${dataDir})`);
    server = await startChatProcess(serverEnv, ["--role", "all"]);
    started.server = server;
    api = loopbackUrl("server API", server.url, ["http:"]);
    if (!server.gatewayUrls[0]) throw new Error("the started server reports no gateway address");
    ws = loopbackUrl("server gateway", server.gatewayUrls[0], ["ws:"]);
  }

  const runId = newRunId();
  const startedAt = new Date();
  const http = connectJson(api, { httpVersion: "2", connections: 2 });
  const ctx: SetupContext = { api, ws, adminToken, http, runId, selfStarted: server !== undefined, log };
  const handles: WorkerHandle[] = [];
  const phases: Record<string, number> = {};
  let abortedBy: string | undefined;
  let fatal: string | undefined;
  const loadBefore = os.loadavg();
  const fatalError = deferred<string>();

  const cleanup = async () => {
    http.close();
    await stopStarted();
  };

  // Bounded: a hard timeout and Ctrl-C both stop everything this runner started.
  const hardStop = (code: number, why: string) => {
    log(`\n${why}: stopping workers and the server`);
    void cleanup().finally(() => process.exit(code));
  };
  const hardTimer = setTimeout(() => hardStop(EXIT.timeout, `hard timeout (MAX_RUNTIME ${formatMs(maxRuntimeMs)})`), maxRuntimeMs);
  process.once("SIGINT", () => hardStop(EXIT.interrupted, "interrupted"));
  process.once("SIGTERM", () => hardStop(EXIT.interrupted, "terminated"));

  const header = [
    `scenario: ${name} (${path.relative(root, file)}), run ${runId}`,
    `executor: ${describeExecutor(options, workers)}`,
    `target: ${server ? "self-started (role all, SQLite in a temporary folder)" : "running deployment"}, API ${api}, gateway ${ws}`,
  ];
  log(header.map((h) => `  ${h}`).join("\n"));

  let data: unknown;
  let serverCpu: { ms?: number; percent?: number } = {};
  /** % of the iteration time during which some task on the machine waited for a CPU (PSI). */
  let cpuPressure: number | undefined;
  let outcomes: ThresholdOutcome[] = [];
  let exitCode: number = EXIT.ok;
  let drained: boolean | undefined;
  let elapsedIterMs = 0;
  const workerCpu: Array<{ index: number; cpuMs: number; percent: number; interrupted: number }> = [];
  const reports: unknown[] = [];
  try {
    // 2. setup
    let t = now();
    log("setup ...");
    data = await timeout(Promise.resolve(mod.setup?.(ctx)), setupTimeoutMs, "setup()");
    phases.setupMs = now() - t;
    // With WORKERS=0 the runner and its worker share one registry: one source, or gauges count twice.
    agg.merge(workers === 0 ? "w0" : "main", registry.take(), now());
    log(`setup done in ${formatMs(phases.setupMs)}`);

    // 3. workers
    t = now();
    const onMessage = (h: WorkerHandle, m: FromWorker) => {
      if ("delta" in m) agg.merge(`w${h.index}`, m.delta as MetricsDelta, m.t, m.type === "metrics" ? m.spanMs : 0);
      switch (m.type) {
        case "ready":
          h.ready.resolve();
          break;
        case "iterations-done":
          h.done.resolve({ interrupted: m.interrupted, cpuMs: m.cpuMs, wallMs: m.wallMs });
          break;
        case "closed":
          h.closed.resolve(m.report);
          break;
        case "error":
          fatalError.resolve(`worker ${h.index}: ${m.message}`);
          break;
      }
    };
    const count = Math.max(1, workers);
    for (let i = 0; i < count; i++) {
      const info: WorkerInfo = { index: i, count, api, ws, runId };
      const h: WorkerHandle = { index: i, send: () => {}, ready: deferred(), done: deferred(), closed: deferred() };
      if (workers === 0) {
        const host = createWorkerHost((m) => setImmediate(() => onMessage(h, m)));
        h.send = (m) => void host.handle(m);
      } else {
        const child = fork(path.join(here, "../support/scenario-worker.js"), [], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          serialization: "advanced",
        });
        child.on("message", (m: FromWorker) => onMessage(h, m));
        child.on("exit", (code, signal) => {
          if (code !== 0 && signal !== "SIGKILL") fatalError.resolve(`worker ${i} exited with ${code ?? signal}`);
          h.closed.resolve(null);
        });
        h.child = child;
        started.children.push(child);
        h.send = (m) => {
          if (child.connected) child.send(m);
        };
      }
      handles.push(h);
      h.send({ type: "init", scenario: scenarioUrl, info, data });
    }
    const orFatal = <T>(p: Promise<T>) => Promise.race([p, fatalError.promise.then((m) => Promise.reject(new Error(m)))]);
    await orFatal(timeout(Promise.all(handles.map((h) => h.ready.promise)), setupTimeoutMs, "setupWorker()"));
    phases.workersReadyMs = now() - t;
    log(`${count} worker${count === 1 ? "" : "s"} ready in ${formatMs(phases.workersReadyMs)}; running for ${formatDuration(planned)} (+ graceful stop ${formatDuration(gracefulStopMs)})`);

    // 4. iterations
    const startAt = now() + 300;
    agg.startAt = startAt;
    const cpu0 = processCpuMs(server?.child.pid);
    const stall0 = cpuStallUs();
    const runnerCpu0 = process.cpuUsage();
    for (const h of handles) h.send({ type: "start", startAt });
    const abortable = thresholds.filter((th) => th.abortOnFail);
    let lastProgress = 0;
    const ticker = setInterval(() => {
      const t = now();
      if (t < startAt) return;
      const elapsed = (t - startAt) / 1000;
      const totals = agg.totals(t);
      const custom = [...agg.counters.keys()].filter((n) => !["iterations", "dropped_iterations", "interrupted_iterations", "iteration_errors"].includes(n)).slice(0, 3);
      if (elapsed - lastProgress >= 5) {
        lastProgress = elapsed;
        log(
          `running (${elapsed.toFixed(0)}s), ${totals.gauge("vus")} VUs, ${totals.counter("iterations")} iterations` +
            (totals.counter("dropped_iterations") ? `, ${totals.counter("dropped_iterations")} dropped` : "") +
            custom.map((n) => `, ${n} ${totals.counter(n)}`).join(""),
        );
      }
      if (!abortedBy)
        for (const th of abortable) {
          if (t - startAt < th.delayAbortEvalMs) continue;
          const o = evaluateThreshold(th, agg, t);
          if (!o.ok) {
            abortedBy = `threshold ${th.metric} '${th.source}' crossed (abortOnFail)`;
            log(`aborting: ${abortedBy}`);
            for (const h of handles) h.send({ type: "stop" });
            break;
          }
        }
    }, 1000);
    const done = await orFatal(timeout(Promise.all(handles.map((h) => h.done.promise)), planned + gracefulStopMs + 60_000, "the iterations"));
    clearInterval(ticker);
    elapsedIterMs = now() - startAt;
    phases.iterationsMs = elapsedIterMs;
    const cpu1 = processCpuMs(server?.child.pid);
    const stall1 = cpuStallUs();
    if (stall0 !== undefined && stall1 !== undefined) cpuPressure = Math.round(((stall1 - stall0) / 1000 / elapsedIterMs) * 1000) / 10;
    if (cpu0 !== undefined && cpu1 !== undefined) serverCpu = { ms: cpu1 - cpu0, percent: Math.round(((cpu1 - cpu0) / elapsedIterMs) * 1000) / 10 };
    const runnerCpu = process.cpuUsage(runnerCpu0);
    done.forEach((d, i) => workerCpu.push({ index: i, cpuMs: Math.round(d.cpuMs), percent: Math.round((d.cpuMs / Math.max(1, d.wallMs)) * 1000) / 10, interrupted: d.interrupted }));
    if (workers > 0) workerCpu.push({ index: -1, cpuMs: Math.round((runnerCpu.user + runnerCpu.system) / 1000), percent: Math.round(((runnerCpu.user + runnerCpu.system) / 1000 / elapsedIterMs) * 1000) / 10, interrupted: 0 });

    // Drain: e.g. deliveries still in flight after the last post.
    if (mod.drained && drainMs > 0) {
      const t1 = now();
      for (;;) {
        if (mod.drained(agg.totals(now()))) {
          drained = true;
          break;
        }
        if (now() - t1 > drainMs) {
          drained = false;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      phases.drainMs = now() - t1;
      log(`drain: ${drained ? "complete" : "INCOMPLETE"} after ${formatMs(phases.drainMs)}`);
    }
    agg.endAt = now();

    // 5. teardowns
    t = now();
    for (const h of handles) h.send({ type: "close" });
    const closed = await orFatal(timeout(Promise.all(handles.map((h) => h.closed.promise)), teardownTimeoutMs, "teardownWorker()"));
    reports.push(...closed);
    for (const h of handles) h.child?.disconnect();
    await timeout(Promise.resolve(mod.teardown?.(data, ctx)), teardownTimeoutMs, "teardown()");
    agg.merge(workers === 0 ? "w0" : "main", registry.take(), now());
    phases.teardownMs = now() - t;

    const extra = mod.finalize?.(agg.totals(agg.endAt), reports, data) ?? {};
    for (const [k, v] of Object.entries(extra)) {
      if (!agg.kinds.has(k)) agg.kinds.set(k, "counter");
      agg.counters.set(k, v);
      agg.derived.add(k);
    }
    outcomes = thresholds.map((th) => evaluateThreshold(th, agg, agg.endAt!));
    if (outcomes.some((o) => !o.ok) || abortedBy) exitCode = EXIT.thresholds;
  } catch (err) {
    fatal = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`\nERROR: ${fatal}`);
    exitCode = EXIT.script;
    agg.endAt ??= now();
  }
  clearTimeout(hardTimer);

  // Summary, JSON, SVG.
  const endNow = agg.endAt ?? now();
  const failed = outcomes.filter((o) => !o.ok).length;
  const serverLogs = server?.logs ?? [];
  const warnings = serverLogs.filter((l) => typeof l.level === "number" && l.level >= 40);
  const summaryHeader = [
    ...header,
    `duration: iterations ${formatMs(elapsedIterMs)}` +
      (phases.drainMs !== undefined ? `, drain ${formatMs(phases.drainMs)} (${drained ? "complete" : "incomplete"})` : "") +
      `, setup ${formatMs(phases.setupMs ?? 0)}`,
    `cpu (% of one core during the iterations): ${serverCpu.percent !== undefined ? `server ${serverCpu.percent}%, ` : ""}` +
      workerCpu.map((w) => (w.index < 0 ? `runner ${w.percent}%` : `worker ${w.index} ${w.percent}%`)).join(", ") +
      `; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} on ${os.cpus().length} cores` +
      (cpuPressure !== undefined ? `; CPU pressure ${cpuPressure}% (time some task waited for a core${cpuPressure > 20 ? ": a noisy run" : ""})` : ""),
    ...(abortedBy ? [`ABORTED: ${abortedBy}`] : []),
    ...(warnings.length ? [`server logged ${warnings.length} warnings/errors (see serverLog in the JSON)`] : []),
  ];
  process.stdout.write(renderSummary(agg, outcomes, summaryHeader, endNow));

  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const resultsDir = path.resolve(process.env.RESULTS_DIR ?? "bench/results");
  mkdirSync(resultsDir, { recursive: true });
  const base = path.join(resultsDir, `scenario-${name}-${stamp}`);
  const metrics: Record<string, unknown> = {};
  for (const [metric, kind] of [...agg.kinds].sort(([a], [b]) => a.localeCompare(b))) {
    const values = agg.values(metric, endNow);
    if (!values) continue;
    if (kind === "trend" && (values.count ?? 0) === 0 && !outcomes.some((o) => o.metric === metric)) continue;
    if (kind === "rate" && !agg.rates.has(metric)) continue;
    if (kind === "gauge" && !agg.gaugeStats.has(metric)) continue;
    if (kind === "counter" && !agg.counters.has(metric) && !outcomes.some((o) => o.metric === metric)) continue;
    const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
    metrics[metric] = {
      type: kind,
      ...(agg.setupOnly(metric) && { phase: "setup" }),
      ...(kind === "trend" && { unit: (registry.definitions.get(metric)?.isTime ?? true) ? "ms" : "" }),
      values: Object.fromEntries(Object.entries(values).filter(([k]) => !k.startsWith("p(")).map(([k, v]) => [k, round(v)])),
      ...(outcomes.some((o) => o.metric === metric) && {
        thresholds: Object.fromEntries(outcomes.filter((o) => o.metric === metric).map((o) => [o.source, { ok: o.ok, actual: round(o.actual) }])),
      }),
    };
  }
  const seconds = Math.max(0, ...[...agg.series.counters.values()].map((l) => l.length));
  const seriesTrends = Object.fromEntries(
    [...agg.series.trends].map(([k, list]) => [
      k,
      Array.from({ length: seconds }, (_, i) => {
        const h = list[i];
        return h ? { count: h.count, p50: Math.round(h.quantile(0.5) * 1000) / 1000, p99: Math.round(h.quantile(0.99) * 1000) / 1000, max: Math.round(h.max * 1000) / 1000 } : null;
      }),
    ]),
  );
  const result = {
    kind: "scenario",
    scenario: name,
    file: path.relative(root, file),
    runId,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: machineInfo(),
    versions: versions(root),
    target: server
      ? { mode: "self-started", role: "all", store: "sqlite (temporary folder)", api, ws, serverEnv: redact(serverEnv) }
      : { mode: "running deployment", api, ws },
    env: redact(Object.fromEntries([...envUsed, ["WORKERS", String(workers)], ...(process.env.THRESHOLDS ? [["THRESHOLDS", process.env.THRESHOLDS]] : [])])),
    options,
    executor: describeExecutor(options, workers),
    phases: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])),
    drained: drained ?? null,
    cpu: {
      note: "% of one core during the iterations; pressurePercent: share of that time some task on the machine waited for a core (/proc/pressure/cpu)",
      pressurePercent: cpuPressure ?? null,
      server: serverCpu, workers: workerCpu.filter((w) => w.index >= 0), runner: workerCpu.find((w) => w.index < 0) ?? null },
    loadAverage: { before: loadBefore, after: os.loadavg() },
    metrics,
    checks: [...agg.checks].map(([checkName, [passes, fails]]) => ({ name: checkName, passes, fails })),
    thresholds: { passed: outcomes.length - failed, failed, outcomes: outcomes.map((o) => ({ metric: o.metric, threshold: o.source, ok: o.ok, actual: Number.isFinite(o.actual) ? o.actual : null })) },
    series: {
      note: "per second since the iterations started",
      counters: Object.fromEntries([...agg.series.counters].map(([k, v]) => [k, Array.from({ length: seconds }, (_, i) => v[i] ?? 0)])),
      gauges: Object.fromEntries(agg.series.gauges),
      trends: seriesTrends,
    },
    workerReports: reports,
    serverLog: server ? { warningsAndErrors: warnings.length, sample: warnings.slice(0, 20) } : null,
    abortedBy: abortedBy ?? null,
    error: fatal ?? null,
    exitCode,
  };
  writeFileSync(`${base}.json`, JSON.stringify(result, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
  writeFileSync(`${base}.svg`, chart(name, result.machine, summaryHeader, agg, outcomes, failed, seconds));
  log(`wrote ${base}.json and .svg`);
  await cleanup();
  if (exitCode === EXIT.thresholds) log(abortedBy ? `aborted: ${abortedBy}` : `${failed} threshold${failed === 1 ? "" : "s"} failed`);
  return exitCode;
}

function chart(
  name: string,
  machine: ReturnType<typeof machineInfo>,
  header: string[],
  agg: Aggregator,
  outcomes: ThresholdOutcome[],
  failed: number,
  seconds: number,
): string {
  // In the order the scenario declared them (k6's init context), then any others.
  const declared = [...registry.definitions.keys()];
  const builtins = new Set(["iteration_duration", "worker_loop_delay"]);
  const order = (n: string) => (builtins.has(n) ? 2 * declared.length : declared.indexOf(n) < 0 ? declared.length : declared.indexOf(n));
  const trendNames = [...agg.trends.keys()]
    .filter((n) => (agg.trends.get(n)?.count ?? 0) > 0 && registry.definitions.get(n)?.isTime !== false)
    .sort((a, b) => order(a) - order(b));
  const shown = trendNames.length > 1 ? trendNames.filter((n) => n !== "iteration_duration") : trendNames;
  const groups: BarGroup[] = shown.map((n) => {
    const s = agg.trendStats(n);
    return {
      label: n,
      bars: [
        { label: "p50", value: s.med },
        { label: "p90", value: s.p90 },
        { label: "p95", value: s.p95 },
        { label: "p99", value: s.p99 },
        { label: "max", value: s.max },
      ],
      markers: outcomes
        .filter((o) => o.metric === n && ["p", "med", "avg", "max"].includes(o.aggregation) && (o.op === "<" || o.op === "<="))
        .map((o) => ({ value: o.value, label: `${o.ok ? "✓" : "✗"} ${o.source}`, ok: o.ok })),
    };
  });
  // Bucket i counts [i, i+1) s; plotted at its centre. The last bucket is usually partial: scaled to a full second, or left out when under 0.2 s.
  const span = agg.startAt !== undefined && agg.endAt !== undefined ? (agg.endAt - agg.startAt) / 1000 : seconds;
  const perSecond = (list: number[] | undefined): Array<[number, number]> =>
    Array.from({ length: seconds }, (_, i): [number, number] => [i + 0.5, (list?.[i] ?? 0) / Math.min(1, Math.max(1e-9, span - i))]).filter(([x]) => span - (x - 0.5) >= 0.2);
  // Throughput panels: counters of a similar size (within 3x) share a panel and its scale.
  const counters = [...agg.series.counters.keys()]
    .filter((n) => !["dropped_iterations", "interrupted_iterations", "iteration_errors"].includes(n) || (agg.counters.get(n) ?? 0) > 0)
    .sort((a, b) => (agg.counters.get(b) ?? 0) - (agg.counters.get(a) ?? 0));
  const panels: string[][] = [];
  for (const n of counters) {
    const last = panels[panels.length - 1];
    if (last && (agg.counters.get(n) ?? 0) * 3 >= (agg.counters.get(last[0]!) ?? 0) && last.length < 4) last.push(n);
    else if (panels.length < 5) panels.push([n]);
  }
  const lines: LinePanel[] = panels.map((names) => ({
    kind: "lines",
    title: `Throughput per second: ${names.join(", ")}`,
    unit: "/s",
    xLabel: "seconds since start",
    series: names.map((n) => ({ label: n, points: perSecond(agg.series.counters.get(n)) })),
  }));
  if (shown.some((n) => !agg.setupOnly(n)))
    lines.push({
      kind: "lines",
      title: "Latency over time: p99 per second",
      unit: "ms",
      xLabel: "seconds since start",
      series: shown.filter((n) => !agg.setupOnly(n)).map((n) => ({ label: n, points: (agg.series.trends.get(n) ?? []).flatMap((h, i): Array<[number, number]> => (h ? [[i + 0.5, h.quantile(0.99)]] : [])) })),
    });
  const gauges = [...agg.series.gauges.keys()].filter((n) => n !== "vus_max");
  if (gauges.length)
    lines.push({
      kind: "lines",
      title: "Gauges (summed over workers)",
      unit: "",
      xLabel: "seconds since start",
      series: gauges.map((n) => ({ label: n, points: (agg.series.gauges.get(n) ?? []).map((v, i): [number, number] => [i + 0.5, v]) })),
    });
  return renderChart({
    title: `scenario ${name} — ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC`,
    subtitle: [
      ...header.slice(1),
      `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.node}${machine.commit ? `, commit ${machine.commit}` : ""}`,
      outcomes.length ? `thresholds: ${outcomes.length - failed} passed, ${failed} failed` : "no thresholds",
    ],
    panels: [{ kind: "bars", title: "Latency percentiles per trend", unit: "ms", groups }, ...lines],
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`${err instanceof ConfigError ? "configuration error" : "error"}: ${err instanceof Error ? err.message : String(err)}`);
    void stopStarted().finally(() => process.exit(err instanceof ConfigError ? EXIT.config : EXIT.script));
  },
);

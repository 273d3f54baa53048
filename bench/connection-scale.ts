/**
 * Connection-scale benchmark: how many authenticated, idle WebSockets one
 * host holds when neither the gateway nor the load generator fits in one
 * process (a process here may hold at most 20,000 open files), what each
 * costs the gateway in memory, and how long one broadcast takes to reach
 * them all.
 *
 *   1. the real program (dist/bin/chat.js, role all, SQLite in a temporary
 *      data folder) with CHAT_GATEWAY_WORKERS gateway processes sharing
 *      CHAT_GATEWAY_LISTEN (several loopback addresses, SO_REUSEPORT), each
 *      capped below its open-files limit; Node's inspector on loopback in
 *      every process (workers inherit it), to read memory after a full GC;
 *   2. seeding through the API (Connect binary over h2c, concurrent unary
 *      calls: there is no bulk path): connections / --sockets-per-user users
 *      (CreateUser), one public channel that all of them join (JoinChannel);
 *      tokens are minted here with the shared secret, exactly as
 *      chat/auth.ts issues them (its own issueToken);
 *   3. load-generator processes (bench/support/idle-socket-worker.ts), each
 *      with at most --per-client sockets and its own source addresses in
 *      127.0.0.0/8 (at most --per-source sockets each), open their share
 *      --concurrency at a time and wait for each socket's hello; then all
 *      sockets stay idle for --hold-seconds (the server pings; they answer);
 *   4. gateway memory per held connection: resident memory of the main
 *      process and of every gateway worker, after the hold minus before the
 *      first connection, read from /proc and again after a full GC in each
 *      process (through its inspector);
 *   5. broadcasts (--broadcasts rounds): a PostMessage to the channel of
 *      everyone; each load generator records when each of its sockets got it
 *      (one clock: same host, performance.timeOrigin + performance.now());
 *      time until the last socket had it, and how many did.
 *
 * Run: npm run bench:connections -- [--quick] [--connections 200000] [--gateway-workers 0 (auto)]
 *        [--listen-addresses 4] [--sockets-per-user 2] [--per-client 18000] [--per-source 5000]
 *        [--concurrency 100] [--seed-concurrency 64] [--hold-seconds 30] [--broadcasts 3] [--broadcast-timeout-seconds 30]
 *        [--handshake-timeout-seconds 30] [--hello-timeout-seconds 60] [--retries 1] [--max-connections-per-worker 0]
 *        [--timeout-minutes 25] [--heap-summary]
 * Every flag also reads from CHAT_BENCH_<FLAG> (e.g. CHAT_BENCH_CONNECTIONS=50000).
 * Writes bench/results/connections-<timestamp>.json. Loopback only; it stops
 * everything it started, also on error, timeout and SIGINT.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateChannelRequestSchema, CreateChannelResponseSchema, JoinChannelRequestSchema } from "../gen/chat/v1/channel_pb.js";
import { PostMessageRequestSchema, PostMessageResponseSchema } from "../gen/chat/v1/message_pb.js";
import { CreateUserRequestSchema, CreateUserResponseSchema } from "../gen/chat/v1/user_pb.js";
import { startChatProcess, type ChatProcess } from "../infra/harness/chat-process.js";
import { stopChild } from "../infra/harness/processes.js";
import { createAuthenticator } from "../chat/auth.js";
import { createH2Caller, type H2Caller } from "./support/h2-caller.js";
import type { FailureSample, OpenRequest, WorkerStats } from "./support/idle-socket-worker.js";
import { inspectorUrls, memoryAfterGcOfAll, type ProcessMemory } from "./support/inspector-all.js";
import { ask as askChild } from "./support/ipc.js";
import { cleanupAll, isStopping, onCleanup, stopOnSignalsAndTimeout, trackPid } from "./support/lifecycle.js";
import { heapSummary, type HeapGroup } from "./support/heap-summary.js";
import { machineInfo } from "./support/machine.js";
import { grownSamples, scrapeEveryProcess, sumSamples, type Samples } from "./support/scrape-workers.js";
import { inParallel } from "./support/parallel.js";
import { benchParams, flagOn } from "./support/params.js";
import {
  ACCEPT_COUNTERS,
  childrenOf,
  counterDelta,
  cpuSeconds,
  ephemeralPorts,
  hostLimits,
  hostSnapshot,
  loadAverage,
  machineCpu,
  openFiles,
  openFilesLimit,
  rssBytes,
  tcpCounters,
} from "./support/proc.js";
import { median, nowMs, summarize } from "./support/stats.js";
import { packageVersions, sqliteVersion } from "./support/versions.js";

// ---------------------------------------------------------------------------
// Parameters: CLI flag, else CHAT_BENCH_<FLAG>, else the --quick preset, else the default (support/params.ts).

const NUMERIC = {
  connections: { full: 200_000, quick: 20_000, what: "WebSockets to open and hold" },
  "gateway-workers": { full: 0, quick: 0, what: "gateway processes (CHAT_GATEWAY_WORKERS); 0: one per 17,000 connections" },
  "listen-addresses": { full: 4, quick: 2, what: "gateway listen addresses, 127.0.0.1 upwards (CHAT_GATEWAY_LISTEN)" },
  "sockets-per-user": { full: 2, quick: 2, what: "sockets per user (devices); users = connections / this" },
  "per-client": { full: 18_000, quick: 18_000, what: "most sockets per load-generator process (open-files limit 20,000)" },
  "per-source": { full: 5_000, quick: 5_000, what: "most sockets per source address (ephemeral ports per address)" },
  concurrency: { full: 100, quick: 100, what: "handshakes in flight per load-generator process" },
  "seed-concurrency": { full: 64, quick: 64, what: "seeding calls in flight" },
  "hold-seconds": { full: 30, quick: 10, what: "seconds every socket stays idle before memory is read" },
  broadcasts: { full: 3, quick: 3, what: "broadcast rounds (one message to the channel of everyone each)" },
  "broadcast-timeout-seconds": { full: 30, quick: 30, what: "longest wait for one broadcast to reach every socket" },
  "handshake-timeout-seconds": { full: 30, quick: 30, what: "per socket, connect to HTTP 101" },
  retries: { full: 1, quick: 1, what: "attempts again after a failed one, 1 s later (a client reconnecting)" },
  "hello-timeout-seconds": { full: 60, quick: 60, what: "per socket, HTTP 101 to the hello frame" },
  "max-connections-per-worker": { full: 0, quick: 0, what: "CHAT_GATEWAY_MAX_CONNECTIONS; 0: the product's default (open-files limit minus 5 %)" },
  "timeout-minutes": { full: 25, quick: 4, what: "hard limit on the whole run" },
} as const;

const { cli, quick: QUICK, P } = benchParams(NUMERIC, { "heap-summary": { type: "boolean" } }, true);
/** Heap snapshots of one gateway worker before and after: JS heap per connection by object kind. */
const HEAP_SUMMARY = flagOn(cli, "heap-summary");
if (P.connections < 1) throw new Error("--connections: expected at least 1");
if (P["sockets-per-user"] < 1 || P["per-client"] < 1 || P["per-source"] < 1 || P.concurrency < 1 || P["listen-addresses"] < 1) {
  throw new Error("--sockets-per-user, --per-client, --per-source, --concurrency and --listen-addresses must be at least 1");
}
if (P["listen-addresses"] > 250) throw new Error("--listen-addresses: at most 250");

const CONNECTIONS = P.connections;
/** Average connections per gateway process when --gateway-workers is 0: below the 19,000 cap with room for uneven spread. */
const AUTO_PER_WORKER = 17_000;
const GATEWAY_WORKERS = P["gateway-workers"] || Math.max(1, Math.ceil(CONNECTIONS / AUTO_PER_WORKER));
const CLIENTS = Math.ceil(CONNECTIONS / P["per-client"]);
const USERS = Math.ceil(CONNECTIONS / P["sockets-per-user"]);
const LISTEN = Array.from({ length: P["listen-addresses"] }, (_, i) => `127.0.0.${i + 1}`);
if (GATEWAY_WORKERS > 64) throw new Error(`${GATEWAY_WORKERS} gateway workers: CHAT_GATEWAY_WORKERS allows at most 64`);
if (CLIENTS > 250) throw new Error(`${CLIENTS} load-generator processes: at most 250 (raise --per-client)`);

const ADMIN = "bench-admin-token-0123456789";
const JWT_SECRET = "bench-jwt-secret-0123456789-0123456789";
const GOALS = { connections: 200_000, gatewayBytesPerConnection: 2048, broadcastMs: 5000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)} +${Math.round((Date.now() - started) / 1000)}s] ${line}`);
const mib = (b: number | undefined) => (b === undefined ? undefined : Math.round(b / 104857.6) / 10);

// ---------------------------------------------------------------------------
// Load-generator processes.

interface Client {
  child: ChildProcess;
  index: number;
  sources: string[];
  sockets: number;
  opened?: WorkerStats;
}

/** A load generator's reply to `message` (60 s at the most). */
function ask<T>(child: ChildProcess, message: object, reply: string, timeoutMs = 60_000): Promise<T> {
  return askChild<T>(child, message, reply, timeoutMs, "load generator");
}

function merge(into: Record<string, number>, from: Record<string, number>): Record<string, number> {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

/** The load generators' WorkerStats added up (their resident memory as clientRss). */
type Totals = Omit<WorkerStats, "openMs" | "rss"> & { clientRss: number };

async function totals(clients: Client[]): Promise<Totals> {
  const all = await Promise.all(clients.map((c) => ask<WorkerStats>(c.child, { type: "stats" }, "stats")));
  const t: Totals = { attempted: 0, retried: 0, gaveUp: 0, helloed: 0, open: 0, failed: {}, closedAfterHello: {}, servers: {}, clientRss: 0, failureSamples: [] };
  for (const s of all) {
    t.attempted += s.attempted;
    t.retried += s.retried;
    t.gaveUp += s.gaveUp;
    t.helloed += s.helloed;
    t.open += s.open;
    merge(t.failed, s.failed);
    merge(t.closedAfterHello, s.closedAfterHello);
    merge(t.servers, s.servers);
    t.clientRss += s.rss;
    t.failureSamples.push(...s.failureSamples.slice(0, 10));
  }
  return t;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------
// CPU per process group during a phase, as % of one core, and the whole machine's.

function cpuMeter(groups: () => Record<string, number[]>) {
  const t0 = performance.now();
  const read = () => Object.fromEntries(Object.entries(groups()).map(([k, pids]) => [k, pids.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0)]));
  const before = read();
  const machineBefore = machineCpu();
  const bench = process.cpuUsage();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const after = read();
    const out: Record<string, number> = {};
    for (const k of Object.keys(after)) out[k] = Math.round(((after[k]! - (before[k] ?? 0)) / wall) * 100);
    const b = process.cpuUsage(bench);
    out.bench = Math.round(((b.user + b.system) / 1e6 / wall) * 100);
    const m = machineCpu();
    if (m && machineBefore) {
      // All cores: 200 % is a saturated 2-core machine; what is not ours is other work on the host.
      const cores = (m.total - machineBefore.total) / (wall * 100);
      out.machineBusy = Math.round(((m.busy - machineBefore.busy) / (m.total - machineBefore.total)) * cores * 100);
      const ours = Object.entries(out).reduce((a, [k, v]) => (k === "machineBusy" ? a : a + v), 0);
      out.otherWork = Math.max(0, out.machineBusy - ours);
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// Seeding through the API.

async function unary<T>(
  caller: H2Caller,
  procedure: string,
  token: string,
  body: Uint8Array,
  decode: (b: Uint8Array) => T,
): Promise<T> {
  const r = await caller.call(procedure, token, body);
  if (r.status !== 200) throw new Error(`${procedure}: HTTP ${r.status} ${r.body.toString("utf8").slice(0, 200)}`);
  return decode(r.body);
}

async function seed(apiUrl: string): Promise<{ tokens: string[]; channelId: bigint; figures: Record<string, unknown> }> {
  const caller = createH2Caller(apiUrl, 4);
  const auth = createAuthenticator({ adminToken: ADMIN, jwtSecret: JWT_SECRET, defaultTokenTtlSeconds: 86_400, maxTokenTtlSeconds: 86_400 });
  try {
    const conc = P["seed-concurrency"];
    const ids: bigint[] = new Array<bigint>(USERS);
    const t0 = performance.now();
    let lastLog = t0;
    await inParallel(USERS, conc, async (i) => {
      const res = await unary(
        caller,
        "/chat.v1.UserService/CreateUser",
        ADMIN,
        toBinary(CreateUserRequestSchema, create(CreateUserRequestSchema, { name: `conn ${i}`, email: `conn${i}@example.com` })),
        (b) => fromBinary(CreateUserResponseSchema, b),
      );
      ids[i] = res.user!.id;
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`seeding: ${i + 1}/${USERS} users`);
      }
    });
    const usersSeconds = (performance.now() - t0) / 1000;

    const t1 = performance.now();
    const tokens = await Promise.all(ids.map(async (id) => (await auth.issueToken(id, 0)).token));
    const tokensSeconds = (performance.now() - t1) / 1000;

    const t2 = performance.now();
    const channel = await unary(
      caller,
      "/chat.v1.ChannelService/CreateChannel",
      tokens[0]!,
      toBinary(CreateChannelRequestSchema, create(CreateChannelRequestSchema, { name: "everyone", topic: "connection-scale broadcast" })),
      (b) => fromBinary(CreateChannelResponseSchema, b),
    );
    const channelId = channel.channel!.id;
    lastLog = performance.now();
    // The creator is already a member (OWNER).
    await inParallel(USERS - 1, conc, async (i) => {
      await unary(
        caller,
        "/chat.v1.ChannelService/JoinChannel",
        tokens[i + 1]!,
        toBinary(JoinChannelRequestSchema, create(JoinChannelRequestSchema, { channelId })),
        () => undefined,
      );
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`seeding: ${i + 2}/${USERS} members`);
      }
    });
    const joinsSeconds = (performance.now() - t2) / 1000;
    const figures = {
      users: USERS,
      usersSeconds: round(usersSeconds, 2),
      createUserPerSecond: Math.round(USERS / usersSeconds),
      tokensMintedLocallySeconds: round(tokensSeconds, 2),
      joinsSeconds: round(joinsSeconds, 2),
      joinPerSecond: Math.round((USERS - 1) / joinsSeconds),
      totalSeconds: round((performance.now() - t0) / 1000, 2),
      calls: 2 * USERS,
      callsInFlight: conc,
      how: "concurrent unary Connect calls (binary, h2c, 4 sessions): CreateUser (admin) per user, JoinChannel (user token) per user; the API has no bulk path",
    };
    return { tokens, channelId, figures };
  } finally {
    caller.close();
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------------------
// Memory of the gateway processes.

interface ProcessFigures {
  pid: number;
  role: "main" | "worker";
  rssProc?: number;
  gc?: ProcessMemory;
}

async function memoryOf(server: ChatProcess, pids: { main: number; workers: number[] }): Promise<ProcessFigures[]> {
  const procRss = new Map([pids.main, ...pids.workers].map((p) => [p, rssBytes(p)]));
  const gc = await memoryAfterGcOfAll(inspectorUrls(server.stderr()));
  return [pids.main, ...pids.workers].map((pid) => ({
    pid,
    role: pid === pids.main ? "main" : "worker",
    ...(procRss.get(pid) !== undefined && { rssProc: procRss.get(pid)! }),
    ...(gc.get(pid) && { gc: gc.get(pid)! }),
  }));
}

function perConnection(before: ProcessFigures[], after: ProcessFigures[], held: number, roles: Array<"main" | "worker">) {
  const pick = (list: ProcessFigures[], f: (p: ProcessFigures) => number | undefined) =>
    list.filter((p) => roles.includes(p.role)).reduce((a, p) => a + (f(p) ?? 0), 0);
  const d = (f: (p: ProcessFigures) => number | undefined, fBefore = f) => ({
    before: pick(before, fBefore),
    after: pick(after, f),
    perConnection: held > 0 ? Math.round((pick(after, f) - pick(before, fBefore)) / held) : NaN,
  });
  return {
    rssAfterGc: d((p) => p.gc?.rss),
    heapUsedAfterGc: d((p) => p.gc?.heapUsed),
    externalAfterGc: d((p) => p.gc?.external),
    /** RSS as ps shows it after the hold (before any forced GC), against the baseline after a full GC. */
    rssWithoutGc: d(
      (p) => p.rssProc,
      (p) => p.gc?.rss,
    ),
  };
}

// ---------------------------------------------------------------------------

function versionsOf(): Record<string, unknown> {
  return {
    node: process.version,
    sqlite: sqliteVersion(),
    packages: packageVersions(["uWebSockets.js", "@connectrpc/connect-node", "@bufbuild/protobuf", "better-sqlite3", "fast-jwt"]),
  };
}

/** The connection cap a gateway process computes for itself when CHAT_GATEWAY_MAX_CONNECTIONS is 0 (gateway/gateway.ts). */
function productCap(softLimit: number | undefined): number | undefined {
  if (softLimit === undefined || !Number.isFinite(softLimit)) return undefined;
  return Math.max(100, softLimit - Math.max(200, Math.floor(softLimit * 0.05)));
}

interface BroadcastRound {
  round: number;
  messageId: string | undefined;
  postAckMs: number;
  received: number;
  openAtBroadcast: number;
  missing: number;
  firstReceivedMs: number;
  lastReceivedMs: number;
  receiptMs: ReturnType<typeof summarize>;
  cpuPercent: Record<string, number>;
}

/**
 * Posts one message to the channel of everyone and waits until every open
 * socket has it (or the timeout): receipt times are on the load generators'
 * clocks (same host), relative to just before the post was sent.
 */
async function broadcastOnce(
  caller: H2Caller,
  clients: Client[],
  seeded: { tokens: string[]; channelId: bigint },
  held: number,
  groups: () => Record<string, number[]>,
  round: number,
): Promise<BroadcastRound> {
  const marker = `broadcast-${round}-${process.pid}-${Date.now()}`;
  await Promise.all(clients.map((c) => ask(c.child, { type: "arm", marker }, "armed")));
  const open = (await totals(clients)).open;
  const body = toBinary(PostMessageRequestSchema, create(PostMessageRequestSchema, { channelId: seeded.channelId, text: marker, clientMsgId: marker }));
  const meter = cpuMeter(groups);
  const tPost = nowMs();
  const answer = await unary(caller, "/chat.v1.MessageService/PostMessage", seeded.tokens[0]!, body, (b) => fromBinary(PostMessageResponseSchema, b));
  const tAck = nowMs();
  const deadline = tPost + P["broadcast-timeout-seconds"] * 1000;
  while (nowMs() < deadline) {
    const all = await Promise.all(clients.map((c) => ask<{ received: number }>(c.child, { type: "broadcast" }, "broadcast")));
    if (all.reduce((a, x) => a + x.received, 0) >= open) break;
    await sleep(20);
  }
  const cpuPercent = meter();
  const all = await Promise.all(
    clients.map((c) =>
      ask<{ received: number; firstAt: number; lastAt: number; times: number[] }>(c.child, { type: "broadcast", withTimes: true }, "broadcast"),
    ),
  );
  const times = all.flatMap((x) => x.times).map((t) => t - tPost);
  const got = all.filter((x) => x.received > 0);
  return {
    round,
    messageId: answer.message?.id.toString(),
    postAckMs: round2(tAck - tPost),
    received: times.length,
    openAtBroadcast: open,
    missing: Math.max(0, Math.min(open, held) - times.length),
    firstReceivedMs: got.length ? round2(Math.min(...got.map((x) => x.firstAt)) - tPost) : NaN,
    lastReceivedMs: got.length ? round2(Math.max(...got.map((x) => x.lastAt)) - tPost) : NaN,
    receiptMs: summarize(times),
    cpuPercent,
  };
}

const round2 = (x: number) => round(x, 1);

/**
 * The gateways' own view of the broadcasts: chat_gateway_delivery_latency_seconds
 * is observed once per message and process, from the message's id timestamp
 * (accepted by the API) to the end of its publish to the local sockets
 * (uWebSockets.js writes to every socket in that call). Summed over processes;
 * the load generators' CPU is not in it.
 */
function handOff(before: Map<string, Samples>, after: Map<string, Samples>, prefix: string) {
  const d = grownSamples(sumSamples(before.values()), sumSamples(after.values()));
  const count = d[`${prefix}_count`] ?? 0;
  const buckets = Object.entries(d)
    .flatMap(([k, v]) => {
      const le = /_bucket\{le="([^"]+)"\}/.exec(k)?.[1];
      return le === undefined ? [] : [{ le: le === "+Inf" ? Infinity : Number(le), count: v }];
    })
    .sort((a, b) => a.le - b.le);
  const within = buckets.find((b) => b.count >= count && count > 0)?.le;
  return {
    processesSeen: `${before.size} before, ${after.size} after (of ${GATEWAY_WORKERS})`,
    observations: count,
    meanMs: count > 0 ? round(((d[`${prefix}_sum`] ?? 0) / count) * 1000, 1) : NaN,
    /** Every observation was at most this (a histogram bucket bound), in ms. */
    allWithinMs: within === undefined ? null : within === Infinity ? "over 1000" : within * 1000,
    buckets: Object.fromEntries(buckets.map((b) => [String(b.le), b.count])),
  };
}

async function run(result: Record<string, unknown>): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-conn-bench-"));
  onCleanup("data folder", async () => rmSync(dataDir, { recursive: true, force: true }));
  const env: Record<string, string> = {
    CHAT_ADMIN_TOKEN: ADMIN,
    CHAT_JWT_SECRET: JWT_SECRET,
    CHAT_DATA_DIR: dataDir,
    CHAT_GATEWAY_WORKERS: String(GATEWAY_WORKERS),
    CHAT_GATEWAY_LISTEN: LISTEN.map((h) => `${h}:0`).join(","),
    CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(P["sockets-per-user"]),
    CHAT_LOG_LEVEL: "info",
    ...(P["max-connections-per-worker"] > 0 && { CHAT_GATEWAY_MAX_CONNECTIONS: String(P["max-connections-per-worker"]) }),
  };
  result.serverEnv = { ...env, CHAT_ADMIN_TOKEN: "(set)", CHAT_JWT_SECRET: "(set)" };

  // 1. The system.
  log(`starting the chat system: role all, ${GATEWAY_WORKERS} gateway workers on ${LISTEN.join(", ")}`);
  const server = await startChatProcess(env, [], ["--inspect=127.0.0.1:0"]);
  const mainPid = server.child.pid!;
  trackPid(mainPid);
  onCleanup("chat system", async () => {
    const workers = childrenOf(mainPid);
    workers.forEach(trackPid);
    await stopChild(server.child, 20_000);
  });
  let workerPids = childrenOf(mainPid);
  for (let i = 0; i < 50 && workerPids.length < GATEWAY_WORKERS; i++) (await sleep(100), (workerPids = childrenOf(mainPid)));
  workerPids.forEach(trackPid);
  const destinations = server.gatewayUrls.map((u) => {
    const url = new URL(u);
    return { host: url.hostname, port: Number(url.port) };
  });
  const workerLimit = openFilesLimit(workerPids[0] ?? mainPid);
  const capPerWorker = P["max-connections-per-worker"] || productCap(workerLimit?.soft);
  result.system = {
    api: server.url,
    gateway: server.gatewayUrls,
    mainPid,
    workerPids,
    workerOpenFilesLimit: workerLimit,
    capPerWorker,
    capHow: P["max-connections-per-worker"]
      ? "CHAT_GATEWAY_MAX_CONNECTIONS"
      : "gateway/gateway.ts defaultMaxConnections: soft open-files limit minus max(200, 5 %)",
    capacity: capPerWorker === undefined ? undefined : capPerWorker * workerPids.length,
  };
  log(
    `system up: API ${server.url}, gateway ${server.gatewayUrls.join(" ")}; ${workerPids.length} worker processes, ` +
      `each capped at ${capPerWorker} connections (open files ${workerLimit?.soft}/${workerLimit?.hard}) = capacity ${(result.system as { capacity?: number }).capacity}`,
  );
  if (workerPids.length !== GATEWAY_WORKERS) throw new Error(`expected ${GATEWAY_WORKERS} gateway workers, found ${workerPids.length}`);
  const pids = { main: mainPid, workers: workerPids };

  // 2. Seeding.
  log(`seeding ${USERS} users (${P["sockets-per-user"]} sockets each) and one channel of everyone`);
  const seeded = await seed(server.url);
  result.seeding = seeded.figures;
  log(`seeding done: ${JSON.stringify(seeded.figures).slice(0, 300)}`);

  // Baseline memory: everything started, nothing connected.
  await sleep(1000);
  // A heap snapshot leaves native memory behind in the process: taken before the
  // baseline, it is in both readings, but RSS figures of such a run are not for comparison.
  let heapWorker: ProcessMemory | undefined;
  let heapBefore: Awaited<ReturnType<typeof heapSummary>> | undefined;
  if (HEAP_SUMMARY) {
    heapWorker = (await memoryAfterGcOfAll(inspectorUrls(server.stderr()))).get(workerPids[0]!);
    if (heapWorker) heapBefore = await heapSummary(heapWorker.url, 200);
  }
  const memBefore = await memoryOf(server, pids);
  const hostBefore = hostSnapshot();
  const countersBefore = tcpCounters();

  // 3. Connections.
  const clients: Client[] = [];
  const perClient = Math.ceil(CONNECTIONS / CLIENTS);
  const workerModule = path.resolve("dist/bench/support/idle-socket-worker.js");
  for (let c = 0; c < CLIENTS; c++) {
    const sockets = Math.min(perClient, CONNECTIONS - c * perClient);
    const sourceCount = Math.max(1, Math.ceil(sockets / P["per-source"]));
    if (sourceCount > 250) throw new Error(`load generator ${c}: ${sourceCount} source addresses, at most 250 (raise --per-source)`);
    const sources = Array.from({ length: sourceCount }, (_, j) => `127.10.${c}.${j + 1}`);
    const child = fork(workerModule, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [] });
    trackPid(child.pid!);
    clients.push({ child, index: c, sources, sockets });
  }
  onCleanup("load generators", async () => {
    await Promise.all(
      clients.map(async (c) => {
        if (c.child.exitCode !== null || c.child.signalCode !== null) return;
        const exited = new Promise((r) => c.child.once("exit", r));
        if (c.child.connected) c.child.send({ type: "close" });
        await Promise.race([exited, sleep(15_000)]);
        if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
      }),
    );
  });

  const clientPids = () => clients.map((c) => c.child.pid!);
  const groups = () => ({ main: [mainPid], workers: childrenOf(mainPid), clients: clientPids() });
  const portsPerPair = ephemeralPorts();
  result.addressing = {
    loadGenerators: CLIENTS,
    socketsPerLoadGenerator: perClient,
    sourcesPerLoadGenerator: clients.map((c) => c.sources.length),
    sources: clients.map((c) => `${c.sources[0]}..${c.sources.at(-1)}`),
    destinations: destinations.map((d) => `${d.host}:${d.port}`),
    mostSocketsPerSourceAddress: Math.max(...clients.map((c) => Math.ceil(c.sockets / c.sources.length))),
    ephemeralPortsPerSourceAddress: portsPerPair,
    note:
      "sockets bind their source address (localAddress), so the kernel picks the source port at bind time, without the destination: " +
      "each source address has ip_local_port_range's ports for all destinations together",
  };
  log(
    `connecting ${CONNECTIONS} sockets from ${CLIENTS} load generators (${perClient} each, ${P.concurrency} handshakes in flight each, ` +
      `${clients.reduce((a, c) => a + c.sources.length, 0)} source addresses, <= ${(result.addressing as { mostSocketsPerSourceAddress: number }).mostSocketsPerSourceAddress} per address)`,
  );
  const connectCpu = cpuMeter(groups);
  const tConnect = performance.now();
  const openedAll = Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          const on = (m: { type: string } & WorkerStats) => {
            if (m.type !== "opened") return;
            c.child.off("message", on);
            c.opened = m;
            resolve();
          };
          c.child.on("message", on);
          c.child.once("exit", (code) => reject(new Error(`load generator ${c.index} exited (${code}) while opening`)));
          const request: OpenRequest = {
            type: "open",
            destinations,
            sources: c.sources,
            tokens: seeded.tokens.slice(
              Math.floor((c.index * perClient) / P["sockets-per-user"]),
              Math.ceil((c.index * perClient + c.sockets) / P["sockets-per-user"]),
            ),
            firstSocket: c.index * perClient,
            socketsPerUser: P["sockets-per-user"],
            sockets: c.sockets,
            concurrency: P.concurrency,
            handshakeTimeoutMs: P["handshake-timeout-seconds"] * 1000,
            helloTimeoutMs: P["hello-timeout-seconds"] * 1000,
            retries: P.retries,
            retryDelayMs: 1000,
          };
          c.child.send(request);
        }),
    ),
  );
  let done = false;
  void openedAll.then(
    () => (done = true),
    () => (done = true),
  );
  const progress: Array<{ seconds: number; helloed: number; failedAttempts: number; open: number }> = [];
  let peakConntrack = hostBefore.conntrackCount ?? 0;
  while (!done) {
    await Promise.race([openedAll.catch(() => undefined), sleep(5000)]);
    if (done) break;
    const t = await totals(clients);
    const seconds = (performance.now() - tConnect) / 1000;
    progress.push({ seconds: round(seconds, 1), helloed: t.helloed, failedAttempts: sum(t.failed), open: t.open });
    peakConntrack = Math.max(peakConntrack, hostSnapshot().conntrackCount ?? 0);
    const prev = progress.at(-2);
    const rate = prev ? Math.round((t.helloed - prev.helloed) / (seconds - prev.seconds)) : Math.round(t.helloed / seconds);
    log(`connecting: ${t.helloed}/${CONNECTIONS} with hello (${rate}/s now), ${sum(t.failed)} failed attempts, load ${loadAverage()?.join(" ")}`);
  }
  await openedAll;
  const connectSeconds = (performance.now() - tConnect) / 1000;
  const connectCpuPercent = connectCpu();
  const afterConnect = await totals(clients);
  const countersAfterConnect = tcpCounters();
  const connect = {
    sockets: CONNECTIONS,
    established: afterConnect.helloed,
    /** Sockets that never got their hello, after --retries. */
    failed: afterConnect.gaveUp,
    attempts: afterConnect.attempted,
    retries: afterConnect.retried,
    /** Failed attempts by kind (each retried up to --retries times). */
    failedAttemptsByKind: afterConnect.failed,
    failureSamples: afterConnect.failureSamples.map((f) => ({ ...f, at: new Date(f.at).toISOString() })),
    seconds: round(connectSeconds, 2),
    /** Sockets with their hello (authenticated, session started) per second, first attempt to last. */
    perSecond: Math.round(afterConnect.helloed / connectSeconds),
    progress,
    cpuPercent: connectCpuPercent,
    tcpCounters: counterDelta(countersBefore, countersAfterConnect, ACCEPT_COUNTERS),
    perGatewayProcess: afterConnect.servers,
  };
  result.connect = connect;
  log(
    `connected: ${connect.established}/${CONNECTIONS} with hello in ${connect.seconds} s (${connect.perSecond}/s), ${connect.failed} failed; ` +
      `${connect.attempts} attempts, failed attempts ${JSON.stringify(connect.failedAttemptsByKind)}, ${connect.retries} retried; CPU% ${JSON.stringify(connectCpuPercent)}`,
  );
  log(`per gateway process: ${Object.values(afterConnect.servers).join(", ")}`);

  // Hold.
  log(`holding every socket idle for ${P["hold-seconds"]} s`);
  const holdCpu = cpuMeter(groups);
  const holdEnd = performance.now() + P["hold-seconds"] * 1000;
  while (performance.now() < holdEnd) {
    await sleep(Math.min(10_000, Math.max(0, holdEnd - performance.now())));
    peakConntrack = Math.max(peakConntrack, hostSnapshot().conntrackCount ?? 0);
  }
  const afterHold = await totals(clients);
  const holdCpuPercent = holdCpu();
  const held = afterHold.open;
  const hostAfter = hostSnapshot();
  const fds = Object.fromEntries([mainPid, ...workerPids].map((p) => [p, openFiles(p)]));
  const gatewayMetrics = await scrapeEveryProcess(destinations, GATEWAY_WORKERS, ["chat_gateway_", "chat_process_resident_memory_bytes"]);
  const pick = (x: Samples, prefix: string) => Object.fromEntries(Object.entries(x).filter(([k]) => k.startsWith(prefix)));
  result.hold = {
    seconds: P["hold-seconds"],
    held,
    /** Each gateway worker's own view (/metrics), from repeated GETs on the shared ports. */
    gatewayMetrics: {
      processesSeen: gatewayMetrics.size,
      perProcess: [...gatewayMetrics.values()].map((x) => ({
        connections: x["chat_gateway_connections"],
        busSubscriptions: x["chat_gateway_bus_subscriptions"],
        residentMemoryBytes: x["chat_process_resident_memory_bytes"],
        closes: pick(x, "chat_gateway_closes_total"),
      })),
      closesAllProcesses: pick(sumSamples(gatewayMetrics.values()), "chat_gateway_closes_total"),
    },
    /** Sockets that had their hello and closed since, by kind (during connecting and holding). */
    closedAfterHello: afterHold.closedAfterHello,
    cpuPercent: holdCpuPercent,
    openFilesPerGatewayProcess: fds,
  };
  log(`held: ${held} open at the end of the hold; closed after hello: ${JSON.stringify(afterHold.closedAfterHello)}; CPU% ${JSON.stringify(holdCpuPercent)}`);
  log(
    `gateway workers' own counts (${gatewayMetrics.size}/${GATEWAY_WORKERS} seen): connections ${[...gatewayMetrics.values()].map((x) => x["chat_gateway_connections"]).join(", ")}; ` +
      `closes ${JSON.stringify(pick(sumSamples(gatewayMetrics.values()), "chat_gateway_closes_total"))}`,
  );

  // 4. Memory.
  log("reading memory (/proc, then after a full GC in each gateway process)");
  const memAfter = await memoryOf(server, pids);
  const memory: Record<string, unknown> & {
    allProcesses: ReturnType<typeof perConnection>;
    gatewayWorkers: ReturnType<typeof perConnection>;
    mainProcess: ReturnType<typeof perConnection>;
  } = {
    processes: { before: memBefore, after: memAfter },
    allProcesses: perConnection(memBefore, memAfter, held, ["main", "worker"]),
    gatewayWorkers: perConnection(memBefore, memAfter, held, ["worker"]),
    mainProcess: perConnection(memBefore, memAfter, held, ["main"]),
    gcEverywhere: memAfter.every((p) => p.gc !== undefined) && memBefore.every((p) => p.gc !== undefined),
    loadGenerators: { rss: afterHold.clientRss, perSocket: held > 0 ? Math.round(afterHold.clientRss / held) : NaN },
    kernel: {
      /** Both ends of every loopback connection live in this kernel. */
      slabPerConnection: held > 0 ? Math.round(((hostAfter.slabBytes ?? 0) - (hostBefore.slabBytes ?? 0)) / held) : NaN,
      memAvailableDropPerConnection: held > 0 ? Math.round(((hostBefore.memAvailableBytes ?? 0) - (hostAfter.memAvailableBytes ?? 0)) / held) : NaN,
      before: hostBefore,
      after: hostAfter,
      peakConntrack,
    },
  };
  result.memory = memory;
  log(
    `gateway memory per held connection: all processes ${memory.allProcesses.rssAfterGc.perConnection} B RSS after GC ` +
      `(${memory.allProcesses.rssWithoutGc.perConnection} B without GC); workers only ${memory.gatewayWorkers.rssAfterGc.perConnection} B ` +
      `(heap ${memory.gatewayWorkers.heapUsedAfterGc.perConnection} B); main ${memory.mainProcess.rssAfterGc.perConnection} B; ` +
      `RSS ${mib(memory.allProcesses.rssAfterGc.before)} -> ${mib(memory.allProcesses.rssAfterGc.after)} MiB`,
  );

  if (heapBefore && heapWorker) {
    const after = await heapSummary(heapWorker.url, 200);
    const connections = Object.entries(afterHold.servers).find(([id]) => id.endsWith(`/${heapWorker.pid}`))?.[1] ?? 0;
    const was = new Map(heapBefore.groups.map((g) => [g.what, g]));
    const grown: Array<HeapGroup & { bytesPerConnection: number; countPerConnection: number }> = after.groups
      .map((g) => {
        const b = was.get(g.what);
        const bytes = g.bytes - (b?.bytes ?? 0);
        const count = g.count - (b?.count ?? 0);
        return { what: g.what, count, bytes, bytesPerConnection: round(bytes / Math.max(1, connections), 1), countPerConnection: round(count / Math.max(1, connections), 2) };
      })
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 25);
    memory.rssDistortedByHeapSnapshots = true;
    memory.heapSummaryOneWorker = {
      pid: heapWorker.pid,
      connections,
      heapBytesPerConnection: round((after.totalBytes - heapBefore.totalBytes) / Math.max(1, connections), 1),
      note: "self sizes from heap snapshots before the first connection and after the hold, grouped by node type and constructor",
      grown,
    };
    log(`JS heap per connection in worker ${heapWorker.pid} (${connections} connections), largest kinds (--heap-summary: this run's RSS figures are not for comparison):`);
    for (const g of grown.slice(0, 12)) log(`  ${String(g.bytesPerConnection).padStart(7)} B  ${String(g.countPerConnection).padStart(5)} x  ${g.what}`);
  }

  // 5. Broadcast: --broadcasts rounds, one message each, a second apart.
  const latencyPrefix = "chat_gateway_delivery_latency_seconds";
  const handOffBefore = await scrapeEveryProcess(destinations, GATEWAY_WORKERS, [latencyPrefix, "chat_gateway_connections"]);
  const caller = createH2Caller(server.url, 1);
  const rounds: BroadcastRound[] = [];
  try {
    for (let round = 1; round <= P.broadcasts; round++) {
      if (round > 1) await sleep(1000);
      const r = await broadcastOnce(caller, clients, seeded, held, groups, round);
      rounds.push(r);
      log(
        `broadcast ${round}/${P.broadcasts}: ${r.received}/${r.openAtBroadcast} sockets got it; first after ${r.firstReceivedMs} ms, last after ${r.lastReceivedMs} ms ` +
          `(post acknowledged after ${r.postAckMs} ms); receipt p50 ${r.receiptMs.p50} ms, p99 ${r.receiptMs.p99} ms; CPU% ${JSON.stringify(r.cpuPercent)}`,
      );
    }
  } finally {
    caller.close();
  }
  const handOffAfter = await scrapeEveryProcess(destinations, GATEWAY_WORKERS, [latencyPrefix, "chat_gateway_connections"]);
  const lasts = rounds.map((r) => r.lastReceivedMs);
  result.broadcast = {
    rounds,
    serverHandOff: handOff(handOffBefore, handOffAfter, latencyPrefix),
    medianLastReceivedMs: median(lasts),
    worstLastReceivedMs: Math.max(...lasts),
    bestLastReceivedMs: Math.min(...lasts),
    missingInAnyRound: rounds.reduce((a, r) => a + r.missing, 0),
  };

  const tcpAll = counterDelta(countersBefore, tcpCounters(), ACCEPT_COUNTERS);
  result.tcpCountersWholeRun = tcpAll;
  const logs = server.logs.filter((l) => typeof l.level === "number" && l.level >= 40);
  result.serverWarnings = { count: logs.length, first: logs.slice(0, 10) };
  if (logs.length > 0) log(`the chat system logged ${logs.length} warnings/errors; first: ${JSON.stringify(logs[0]).slice(0, 300)}`);
  result.goalsMet = {
    connections: held >= GOALS.connections,
    gatewayBytesPerConnection: memory.allProcesses.rssAfterGc.perConnection <= GOALS.gatewayBytesPerConnection,
    /** Every socket got every broadcast, the last one within the goal (median over rounds). */
    broadcast: rounds.every((r) => r.missing === 0) && median(lasts) <= GOALS.broadcastMs,
  };
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = {
    kind: "connections",
    machine: machineInfo(),
    versions: versionsOf(),
    limits: hostLimits(),
    load: { atStart: loadAverage() },
    config: { quick: QUICK, params: P, derived: { gatewayWorkers: GATEWAY_WORKERS, loadGenerators: CLIENTS, users: USERS, listen: LISTEN } },
    goals: GOALS,
  };
  log(`connection-scale bench${QUICK ? " (--quick)" : ""}: ${JSON.stringify(P)}`);
  log(`limits: ${JSON.stringify(result.limits)}`);
  const write = () => {
    result.durationSeconds = Math.round((Date.now() - started) / 1000);
    (result.load as Record<string, unknown>).atEnd = loadAverage();
    mkdirSync("bench/results", { recursive: true });
    const file = path.join("bench/results", `connections-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
    return file;
  };
  const disarmTimeout = stopOnSignalsAndTimeout(P["timeout-minutes"], (why) => {
    result.error ??= why;
    console.error(`wrote ${write()} (partial)`);
  });

  try {
    await run(result);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`failed: ${String(result.error)}`);
    process.exitCode = 1;
  } finally {
    if (!isStopping()) {
      log("stopping load generators and the chat system");
      const t = performance.now();
      await cleanupAll();
      result.teardownSeconds = round((performance.now() - t) / 1000, 1);
    }
  }
  if (isStopping()) return;
  disarmTimeout();
  const file = write();
  console.log();
  console.log(summary(result));
  console.log();
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file} (${result.durationSeconds} s)`);
  // Everything it started is stopped; do not wait for stray timers or closing handshakes.
  process.exit(process.exitCode ?? 0);
}

function summary(r: Record<string, unknown>): string {
  const g = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((a, k) => (a as Record<string, unknown> | undefined)?.[k], o);
  const n = (v: unknown) => (typeof v === "number" ? v.toLocaleString("en-US") : String(v));
  const rows: Array<[string, string]> = [
    ["gateway processes (workers) x cap", `${n(g(r, "config", "derived", "gatewayWorkers"))} x ${n(g(r, "system", "capPerWorker"))}`],
    ["load generators x sockets", `${n(g(r, "addressing", "loadGenerators"))} x ${n(g(r, "addressing", "socketsPerLoadGenerator"))}`],
    ["seeding (users + joins)", `${n(g(r, "seeding", "users"))} users in ${n(g(r, "seeding", "totalSeconds"))} s (${n(g(r, "seeding", "createUserPerSecond"))} users/s, ${n(g(r, "seeding", "joinPerSecond"))} joins/s)`],
    ["established (hello) / sockets", `${n(g(r, "connect", "established"))} / ${n(g(r, "connect", "sockets"))}, ${n(g(r, "connect", "failed"))} failed after ${n(g(r, "connect", "retries"))} retries`],
    ["failed attempts by kind", JSON.stringify(g(r, "connect", "failedAttemptsByKind") ?? {})],
    ["connect rate", `${n(g(r, "connect", "perSecond"))}/s over ${n(g(r, "connect", "seconds"))} s`],
    ["held at end of hold", `${n(g(r, "hold", "held"))} (closed after hello: ${JSON.stringify(g(r, "hold", "closedAfterHello") ?? {})})`],
    ["gateway memory / connection, all processes", `${n(g(r, "memory", "allProcesses", "rssAfterGc", "perConnection"))} B RSS after GC (${n(g(r, "memory", "allProcesses", "rssWithoutGc", "perConnection"))} B without GC)`],
    ["  workers only / main only", `${n(g(r, "memory", "gatewayWorkers", "rssAfterGc", "perConnection"))} B / ${n(g(r, "memory", "mainProcess", "rssAfterGc", "perConnection"))} B (workers' JS heap ${n(g(r, "memory", "gatewayWorkers", "heapUsedAfterGc", "perConnection"))} B)`],
    ["load generators / socket; kernel slab / connection", `${n(g(r, "memory", "loadGenerators", "perSocket"))} B; ${n(g(r, "memory", "kernel", "slabPerConnection"))} B`],
    ...((g(r, "broadcast", "rounds") as BroadcastRound[] | undefined) ?? []).map(
      (b): [string, string] => [
        `broadcast ${b.round}: received / open; last, p50, p99`,
        `${n(b.received)} / ${n(b.openAtBroadcast)}; ${n(b.lastReceivedMs)} ms, ${n(b.receiptMs.p50)} ms, ${n(b.receiptMs.p99)} ms (other work ${n(b.cpuPercent.otherWork)} % CPU)`,
      ],
    ),
    ["broadcast: median of last-socket times", `${n(g(r, "broadcast", "medianLastReceivedMs"))} ms`],
    [
      "broadcast: gateways' hand-off (server side)",
      `all within ${n(g(r, "broadcast", "serverHandOff", "allWithinMs"))} ms, mean ${n(g(r, "broadcast", "serverHandOff", "meanMs"))} ms (${n(g(r, "broadcast", "serverHandOff", "observations"))} publishes)`,
    ],
    ["goals met", JSON.stringify(r.goalsMet ?? {})],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}

void main();

/**
 * Cluster benchmark: the two deployments side by side, in one run, with the
 * same load generator and the same figures.
 *
 *   embedded   one process (role all): API and gateway, CHAT_STORE=sqlite,
 *              CHAT_BUS=local, its own temporary data folder;
 *   scale-out  a real single-node Cassandra and a real nats-server (started
 *              and stopped here, through infra/harness), one API process
 *              (role api, CHAT_STORE=cassandra, CHAT_BUS=nats, a keyspace and
 *              subject prefix of its own) and one gateway process (role
 *              gateway, CHAT_API_URL pointing at the API): a post crosses
 *              processes and NATS before any socket sees it.
 *
 * Per mode (in this order: history seeding, 1, 3, 2, so that the history has
 * aged by the time it is read, like the history a user scrolls back through):
 *   1. durable posts/s (PERSISTED channels) over StreamPostMessages: --streams
 *      gRPC streams, --window posts in flight each, for --post-seconds; with
 *      an idempotency key on every post (what clients send), then without;
 *   2. ListMessages (limit 50) over a channel of --history messages seeded with
 *      the same stream poster: "cold" = every page read for the first time
 *      (page-aligned cursors spread over the whole history, shuffled, each used
 *      once), "cached" = the same pages read again; one at a time and
 *      --readers at a time, over two disjoint sets of pages;
 *   3. post-to-delivery at --rate posts/s for --seconds (after
 *      --delivery-warmup-seconds at that rate, reported apart) with --sockets
 *      WebSockets connected to the gateway (users in channels of --group),
 *      posting through the API over --streams streams; a probe socket in
 *      every channel (in a process of its own, support/delivery-probe.ts)
 *      measures receive time minus the send time carried in the text, and the
 *      load-generator processes count deliveries, so any loss shows.
 *
 * Run: npm run bench:cluster -- [--quick] [--modes embedded,scale-out] [--post-seconds 10] [--warmup-seconds 2]
 *        [--streams 16] [--window 16] [--history 100000] [--history-age 65] [--readers 16]
 *        [--sockets 2000] [--group 10] [--sockets-per-user 1] [--rate 1000] [--seconds 10] [--delivery-warmup-seconds 5]
 *        [--workers 2] [--cassandra-heap 1024] [--cassandra host:port] [--nats nats://host:port]
 *        [--timeout-minutes 40]
 * Every flag also reads from CHAT_BENCH_<FLAG> (e.g. CHAT_BENCH_HISTORY=20000).
 * Writes bench/results/cluster-<timestamp>.json. Loopback only; it stops what it started,
 * also on error, timeout and SIGINT.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import cassandra from "cassandra-driver";
import { execFileSync, fork, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ListMessagesRequestSchema, ListMessagesResponseSchema } from "../gen/chat/v1/message_pb.js";
import { CASSANDRA_VERSION, startCassandra } from "../infra/harness/cassandra.js";
import { startChatProcess, type ChatProcess } from "../infra/harness/chat-process.js";
import { ensureNatsServer, startNatsServer } from "../infra/harness/nats-server.js";
import { stopChild } from "../infra/harness/processes.js";
import { ask } from "./support/ipc.js";
import { cleanupAll, isStopping, onCleanup, runMain, stopOnSignalsAndTimeout, track } from "./support/lifecycle.js";
import { machineInfo } from "./support/machine.js";
import { inParallel } from "./support/parallel.js";
import { setupClients, type User } from "./support/setup-clients.js";
import { benchParams, envOf } from "./support/params.js";
import { openPostStream } from "./support/post-stream.js";
import { cpuMeter } from "./support/proc.js";
import { grownSamples as grown, histogramQuantile, scrape } from "./support/scrape-workers.js";
import type { WorkerStats } from "./support/ws-load-worker.js";
import { nowMs, summarize, type LatencySummary } from "./support/stats.js";
import { packageVersions, sqliteVersion } from "./support/versions.js";
import { createH2Caller, h2session } from "./support/h2-caller.js";

// ---------------------------------------------------------------------------
// Parameters: CLI flag, else CHAT_BENCH_<FLAG>, else the --quick preset, else the default (support/params.ts).

const NUMERIC = {
  "post-seconds": { full: 10, quick: 3, what: "seconds of each posts/s measurement" },
  "warmup-seconds": { full: 2, quick: 1, what: "seconds of posting before posts/s is measured" },
  streams: { full: 16, quick: 16, what: "StreamPostMessages streams" },
  window: { full: 16, quick: 16, what: "posts in flight per stream" },
  history: { full: 100_000, quick: 10_000, what: "messages in the history channel" },
  "history-age": { full: 65, quick: 0, what: "least age (s) of the newest history message when reads start" },
  readers: { full: 16, quick: 16, what: "concurrent ListMessages readers" },
  sockets: { full: 2000, quick: 500, what: "WebSockets connected to the gateway" },
  group: { full: 10, quick: 10, what: "users per channel in the delivery test" },
  "sockets-per-user": { full: 1, quick: 1, what: "sockets per user" },
  rate: { full: 1000, quick: 1000, what: "posts/s in the delivery test" },
  seconds: { full: 10, quick: 3, what: "seconds of the delivery test" },
  "delivery-warmup-seconds": { full: 5, quick: 2, what: "seconds of posting before delivery is measured (reported apart)" },
  workers: { full: 2, quick: 1, what: "load-generator processes holding the sockets" },
  "cassandra-heap": { full: 1024, quick: 1024, what: "Cassandra heap (MiB)" },
  "timeout-minutes": { full: 40, quick: 8, what: "hard limit on the whole run" },
} as const;

const { cli, quick: QUICK, P } = benchParams(NUMERIC, { modes: { type: "string" }, cassandra: { type: "string" }, nats: { type: "string" } });
const MODES = ((cli.modes as string | undefined) ?? envOf("modes") ?? "embedded,scale-out")
  .split(",")
  .map((m) => m.trim())
  .filter((m) => m !== "") as Mode[];
for (const m of MODES) if (m !== "embedded" && m !== "scale-out") throw new Error(`--modes: expected embedded and/or scale-out, got ${m}`);
/** An already running Cassandra (host:port) or nats-server (URL) to use instead of starting one. */
const EXISTING_CASSANDRA = (cli.cassandra as string | undefined) ?? envOf("cassandra");
const EXISTING_NATS = (cli.nats as string | undefined) ?? envOf("nats");

type Mode = "embedded" | "scale-out";
const ADMIN = "bench-admin-token-0123456789";
const JWT_SECRET = "bench-jwt-secret-0123456789-0123456789";
const PAGE = 50;
const GOALS = { postsPerSecond: 5000, listColdP99Ms: 15, deliveryP99Ms: 25 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

/** An h2c session whose errors surface on its streams instead of crashing the benchmark. */

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// ---------------------------------------------------------------------------
// Deployments.

interface Deployment {
  mode: Mode;
  apiUrl: string;
  gatewayUrl: string;
  /** pids of the server-side processes, for CPU accounting. */
  pids: Record<string, number | undefined>;
  processes: ChatProcess[];
  description: Record<string, unknown>;
  stop(): Promise<void>;
}

const gatewayEnv = () => ({
  CHAT_ADMIN_TOKEN: ADMIN,
  CHAT_GATEWAY_HOST: "127.0.0.1",
  CHAT_GATEWAY_PORT: "0",
  CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(P["sockets-per-user"] + 5),
  CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES: String(16 * 1024 * 1024),
  CHAT_LOG_LEVEL: "info",
});

async function startProcess(name: string, env: Record<string, string>, args: string[]): Promise<ChatProcess> {
  const p = await startChatProcess(env, args);
  track(p.child);
  onCleanup(name, () => stopChild(p.child, 15_000));
  return p;
}

async function startEmbedded(): Promise<Deployment> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-cluster-bench-embedded-"));
  const removeDir = onCleanup("embedded data folder", async () => rmSync(dataDir, { recursive: true, force: true }));
  const env = { ...gatewayEnv(), CHAT_DATA_DIR: dataDir, CHAT_STORE: "sqlite", CHAT_BUS: "local" };
  const node = await startProcess("embedded chat process", env, ["--role", "all"]);
  return {
    mode: "embedded",
    apiUrl: node.url,
    gatewayUrl: node.gatewayUrls[0]!,
    pids: { node: node.child.pid },
    processes: [node],
    description: { processes: [{ role: "all", env: redact(env) }] },
    async stop() {
      await stopChild(node.child, 15_000);
      await removeDir();
    },
  };
}

interface Infra {
  natsUrl: string;
  natsPid: number | undefined;
  cassandraContactPoint: string;
  cassandraPid: number | undefined;
  versions: Record<string, string | undefined>;
  stop(): Promise<void>;
}

async function startInfra(): Promise<Infra> {
  const versions: Record<string, string | undefined> = {};
  let nats: { url: string; pid: number | undefined; stop: () => Promise<void> };
  if (EXISTING_NATS) {
    nats = { url: EXISTING_NATS, pid: undefined, stop: async () => {} };
  } else {
    log("starting nats-server (JetStream)...");
    const n = await startNatsServer({ log });
    track(n.child);
    nats = { url: n.url, pid: n.child.pid, stop: onCleanup("nats-server", () => n.stop()) };
    try {
      versions.natsServer = execFileSync(ensureNatsServer(), ["--version"], { encoding: "utf8" }).trim();
    } catch {
      versions.natsServer = undefined;
    }
  }
  let cass: { contactPoint: string; pid: number | undefined; stop: () => Promise<void> };
  if (EXISTING_CASSANDRA) {
    cass = { contactPoint: EXISTING_CASSANDRA, pid: undefined, stop: async () => {} };
  } else {
    log(`starting Cassandra ${CASSANDRA_VERSION} (single node, heap ${P["cassandra-heap"]} MiB)...`);
    const t0 = Date.now();
    const c = await startCassandra({ heapMb: P["cassandra-heap"], log });
    track(c.child);
    cass = { contactPoint: c.contactPoint, pid: c.child.pid, stop: onCleanup("Cassandra", () => c.stop()) };
    log(`Cassandra ready on ${c.contactPoint} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const java = spawnSync("java", ["-version"], { encoding: "utf8" });
  versions.java = (java.stderr || java.stdout || "").split("\n")[0]?.trim();
  return {
    natsUrl: nats.url,
    natsPid: nats.pid,
    cassandraContactPoint: cass.contactPoint,
    cassandraPid: cass.pid,
    versions,
    async stop() {
      await nats.stop();
      await cass.stop();
    },
  };
}

async function cassandraClient<T>(contactPoint: string, fn: (client: cassandra.Client) => Promise<T>): Promise<T> {
  const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1" });
  try {
    return await fn(client);
  } finally {
    await client.shutdown();
  }
}

async function startScaleOut(infra: Infra): Promise<Deployment> {
  const dir = mkdtempSync(path.join(tmpdir(), "chat-cluster-bench-scaleout-"));
  const removeDir = onCleanup("scale-out data folder", async () => rmSync(dir, { recursive: true, force: true }));
  const tag = `${process.pid}x${Date.now() % 1_000_000}`;
  const keyspace = `bench_${tag}`;
  // A Cassandra of our own goes away with its data; on one we were given, the keyspace is dropped.
  const dropKeyspace = EXISTING_CASSANDRA
    ? onCleanup("bench keyspace", () =>
        cassandraClient(infra.cassandraContactPoint, async (c) => void (await c.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`))),
      )
    : async () => {};
  const bus = { CHAT_BUS: "nats", CHAT_NATS_URL: infra.natsUrl, CHAT_SUBJECT_PREFIX: `bench${tag}`, CHAT_JWT_SECRET: JWT_SECRET };
  const apiEnv = {
    ...gatewayEnv(),
    ...bus,
    CHAT_NODE_ID: "1",
    CHAT_STORE: "cassandra",
    CHAT_CASSANDRA_CONTACT_POINTS: infra.cassandraContactPoint,
    CHAT_CASSANDRA_KEYSPACE: keyspace,
    CHAT_DATA_DIR: path.join(dir, "api"),
  };
  log(`starting the API process (role api, Cassandra keyspace ${keyspace}, NATS prefix ${bus.CHAT_SUBJECT_PREFIX})...`);
  const api = await startProcess("API process", apiEnv, ["--role", "api"]);
  const gwEnv = { ...gatewayEnv(), ...bus, CHAT_API_URL: api.url, CHAT_DATA_DIR: path.join(dir, "gateway") };
  log("starting the gateway process (role gateway)...");
  const gateway = await startProcess("gateway process", gwEnv, ["--role", "gateway"]);
  return {
    mode: "scale-out",
    apiUrl: api.url,
    gatewayUrl: gateway.gatewayUrls[0]!,
    pids: { api: api.child.pid, gateway: gateway.child.pid, cassandra: infra.cassandraPid, nats: infra.natsPid },
    processes: [api, gateway],
    description: {
      keyspace,
      processes: [
        { role: "api", env: redact(apiEnv) },
        { role: "gateway", env: redact(gwEnv) },
      ],
    },
    async stop() {
      await stopChild(gateway.child, 15_000);
      await stopChild(api.child, 15_000);
      await dropKeyspace();
      await removeDir();
    },
  };
}

function redact(env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  for (const k of ["CHAT_ADMIN_TOKEN", "CHAT_JWT_SECRET"]) if (k in out) out[k] = "(bench constant)";
  return out;
}

// ---------------------------------------------------------------------------
// Clients: Connect (binary, HTTP/2) for setup; a lean Connect-binary caller over
// raw h2c for measured reads and the gRPC post stream for posts, so that the
// load generator costs less CPU than the servers it loads.

interface PostLoad {
  posts: number;
  errors: number;
  firstError?: string;
  seconds: number;
  postsPerSecond: number;
  ackLatencyMs: LatencySummary;
}

/**
 * StreamPostMessages load: `streams` streams (round-robin over posters and
 * channels), each with `window` posts in flight, while more() says so.
 */
async function streamPosts(o: {
  url: string;
  posters: User[];
  channels: bigint[];
  keys: boolean;
  tag: string;
  more: () => boolean;
  ids?: bigint[];
}): Promise<PostLoad> {
  const sessions = Array.from({ length: 4 }, () => h2session(o.url));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: P.streams }, async (_, s) => {
        const stream = openPostStream(sessions[s % sessions.length]!, o.posters[s % o.posters.length]!.token);
        const channelId = o.channels[s % o.channels.length]!;
        await Promise.all(
          Array.from({ length: P.window }, async (_, w) => {
            for (let i = 0; o.more(); i++) {
              const sent = performance.now();
              const answer = await stream.post(
                channelId,
                `${o.tag} ${i} from ${s}/${w}: the quick brown fox jumps over the lazy dog`,
                o.keys ? `${o.tag}-${s}-${w}-${i}` : "",
              );
              if (answer.error) {
                errors++;
                firstError ??= answer.error.message;
                continue;
              }
              latencies.push(performance.now() - sent);
              if (o.ids && answer.message) o.ids.push(answer.message.id);
            }
          }),
        );
        await stream.end();
      }),
    );
  } finally {
    for (const s of sessions) s.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    posts: latencies.length,
    errors,
    ...(firstError !== undefined && { firstError }),
    seconds: Math.round(seconds * 100) / 100,
    postsPerSecond: Math.round(latencies.length / seconds),
    ackLatencyMs: summarize(latencies),
  };
}

// ---------------------------------------------------------------------------
// The three measurements.

async function measurePosts(dep: Deployment, posters: User[], channels: bigint[], meterPids: () => Record<string, number | undefined>) {
  const warmEnd = Date.now() + P["warmup-seconds"] * 1000;
  await streamPosts({ url: dep.apiUrl, posters, channels, keys: true, tag: "warm", more: () => Date.now() < warmEnd });
  const run = async (keys: boolean) => {
    const meter = cpuMeter(meterPids);
    const end = Date.now() + P["post-seconds"] * 1000;
    const r = await streamPosts({ url: dep.apiUrl, posters, channels, keys, tag: keys ? "k" : "n", more: () => Date.now() < end });
    return { ...r, cpuPercent: meter() };
  };
  const withKeys = await run(true);
  log(
    `posts/s, idempotency key on every post: ${withKeys.postsPerSecond}/s (${withKeys.posts} in ${withKeys.seconds} s, ${withKeys.errors} errors), ` +
      `ack ${fmt(withKeys.ackLatencyMs)}; CPU% ${JSON.stringify(withKeys.cpuPercent)}`,
  );
  const withoutKeys = await run(false);
  log(
    `posts/s, no idempotency key: ${withoutKeys.postsPerSecond}/s (${withoutKeys.posts} in ${withoutKeys.seconds} s, ${withoutKeys.errors} errors), ` +
      `ack ${fmt(withoutKeys.ackLatencyMs)}; CPU% ${JSON.stringify(withoutKeys.cpuPercent)}`,
  );
  return { streams: P.streams, window: P.window, channels: channels.length, seconds: P["post-seconds"], withKeys, withoutKeys };
}

async function seedHistory(dep: Deployment, posters: User[], channel: bigint) {
  const ids: bigint[] = [];
  let issued = 0;
  const r = await streamPosts({
    url: dep.apiUrl,
    posters,
    channels: [channel],
    keys: false,
    tag: "history",
    more: () => issued++ < P.history,
    ids,
  });
  log(`history: ${r.posts} messages seeded at ${r.postsPerSecond}/s (${r.errors} errors)`);
  return { ids, seeded: r, seededAt: Date.now() };
}

async function measureReads(
  dep: Deployment,
  reader: User,
  history: { channel: bigint; ids: bigint[]; seededAt: number },
  warmChannels: bigint[],
  meterPids: () => Record<string, number | undefined>,
) {
  const waitMs = history.seededAt + P["history-age"] * 1000 - Date.now();
  if (waitMs > 0) {
    log(`reads: waiting ${(waitMs / 1000).toFixed(0)} s until the history is ${P["history-age"]} s old (--history-age)`);
    await sleep(waitMs);
  }
  const caller = createH2Caller(dep.apiUrl, 4);
  const procedure = "/chat.v1.MessageService/ListMessages";
  const request = (channelId: bigint, before: bigint) =>
    toBinary(ListMessagesRequestSchema, create(ListMessagesRequestSchema, { channelId, before, limit: PAGE }));
  try {
    // Warm-up (JIT, connections) on other channels, so that the history's pages stay unread.
    let warmReads = 0;
    for (const channelId of warmChannels) {
      let before = 0n;
      for (let i = 0; i < 40 && warmReads < 400; i++, warmReads++) {
        const res = await caller.call(procedure, reader.token, request(channelId, before));
        if (res.status !== 200) throw new Error(`ListMessages failed: HTTP ${res.status} ${res.body.toString()}`);
        const page = fromBinary(ListMessagesResponseSchema, res.body);
        if (!page.hasMore) break;
        before = page.nextCursor;
      }
    }

    // Page-aligned cursors over the whole history, newest first: page k holds
    // ids[k*50 .. k*50+49] and is asked for with before = ids[k*50-1]. The head
    // page (no upper bound) is left out. Shuffled, then split into two sets.
    const ids = [...history.ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
    const cursors: bigint[] = [];
    for (let k = 1; k * PAGE + PAGE <= ids.length; k++) cursors.push(ids[k * PAGE - 1]!);
    shuffle(cursors);
    const half = Math.ceil(cursors.length / 2);
    const sequentialSet = cursors.slice(0, half);
    const concurrentSet = cursors.slice(half);
    let wrongPages = 0;
    let failures = 0;
    let firstFailure: string | undefined;
    const bodies = new Map<bigint, Buffer>();

    const read = async (before: bigint, check: "decode" | "compare" | "none") => {
      const res = await caller.call(procedure, reader.token, request(history.channel, before));
      if (res.status !== 200) {
        failures++;
        firstFailure ??= `HTTP ${res.status} ${res.body.toString().slice(0, 200)}`;
        return res.ms;
      }
      if (check === "decode") {
        const page = fromBinary(ListMessagesResponseSchema, res.body);
        if (page.messages.length !== PAGE || !(page.messages[0]!.id < before)) wrongPages++;
        bodies.set(before, res.body);
      } else if (check === "compare") {
        const first = bodies.get(before);
        if (first && !first.equals(res.body)) wrongPages++;
      }
      return res.ms;
    };
    // Where the API says its pages came from (chat_history_reads_total, if it has that metric).
    const metricsUrl = new URL("/metrics", dep.apiUrl).href;
    const sources = () => scrape(metricsUrl, ["chat_history_reads_total"]);
    const sequential = async (set: bigint[], check: "decode" | "compare") => {
      const before = await sources();
      const meter = cpuMeter(meterPids);
      const ms: number[] = [];
      for (const cursor of set) ms.push(await read(cursor, check));
      const cpuPercent = meter();
      return { latencyMs: summarize(ms), cpuPercent, serverPageSources: grown(before, await sources()) };
    };
    const concurrent = async (set: bigint[]) => {
      const before = await sources();
      const meter = cpuMeter(meterPids);
      const ms: number[] = [];
      const t0 = performance.now();
      await inParallel(set.length, P.readers, async (i) => void ms.push(await read(set[i]!, "none")));
      const readsPerSecond = Math.round(ms.length / ((performance.now() - t0) / 1000));
      const cpuPercent = meter();
      return { latencyMs: summarize(ms), readsPerSecond, cpuPercent, serverPageSources: grown(before, await sources()) };
    };
    const historyAgeSeconds = Math.round((Date.now() - history.seededAt) / 1000);
    const coldSequential = await sequential(sequentialSet, "decode");
    const coldConcurrent = await concurrent(concurrentSet);
    const cachedSequential = await sequential(sequentialSet, "compare");
    const cachedConcurrent = await concurrent(concurrentSet);
    const out = {
      messages: ids.length,
      limit: PAGE,
      pagesPerSet: { sequential: sequentialSet.length, concurrent: concurrentSet.length },
      readers: P.readers,
      historyAgeSecondsAtFirstRead: historyAgeSeconds,
      coldSequential,
      coldConcurrent,
      cachedSequential,
      cachedConcurrent,
      failures,
      ...(firstFailure !== undefined && { firstFailure }),
      wrongPages,
    };
    log(`ListMessages cold, 1 at a time: ${fmt(coldSequential.latencyMs)}; CPU% ${JSON.stringify(coldSequential.cpuPercent)}`);
    log(`ListMessages cold, ${P.readers} at a time: ${fmt(coldConcurrent.latencyMs)}, ${coldConcurrent.readsPerSecond} reads/s`);
    log(`ListMessages cached, 1 at a time: ${fmt(cachedSequential.latencyMs)}`);
    log(`ListMessages cached, ${P.readers} at a time: ${fmt(cachedConcurrent.latencyMs)}, ${cachedConcurrent.readsPerSecond} reads/s`);
    const src = (x: { serverPageSources: Record<string, number> }) => JSON.stringify(x.serverPageSources);
    log(
      `ListMessages page sources per the API's metrics: cold ${src(coldSequential)} ${src(coldConcurrent)}, ` +
        `cached ${src(cachedSequential)} ${src(cachedConcurrent)}`,
    );
    if (failures || wrongPages) log(`ListMessages: ${failures} failed, ${wrongPages} wrong pages ${firstFailure ?? ""}`);
    return out;
  } finally {
    caller.close();
  }
}

/** What the delivery probe (support/delivery-probe.ts) recorded since its last reset. */
interface ProbeStats {
  received: number;
  latencies: number[];
  beforeAccept: number[];
  afterAccept: number[];
}

/** The probe's latencies split at the accept time in each message id (ms resolution). */
type AcceptSplit = Record<"sendToAccept" | "acceptToReceive", LatencySummary>;

const splitAtAccept = (p: ProbeStats): AcceptSplit => ({ sendToAccept: summarize(p.beforeAccept), acceptToReceive: summarize(p.afterAccept) });
const fmtSplit = (s: AcceptSplit) => `split at accept: send→accept ${fmt(s.sendToAccept)}, accept→receive ${fmt(s.acceptToReceive)}`;

async function measureDelivery(dep: Deployment, clients: ReturnType<typeof setupClients>, meterPids: () => Record<string, number | undefined>) {
  const spu = Math.max(1, P["sockets-per-user"]);
  const group = Math.max(1, P.group);
  const userCount = Math.ceil(P.sockets / spu);
  const groupCount = Math.ceil(userCount / group);
  log(`delivery: ${userCount} users x ${spu} socket(s), ${groupCount} channels of ${group}, a probe in every channel`);
  const t0 = Date.now();
  const users = await clients.createUsers(userCount, "socket");
  const [probe] = await clients.createUsers(1, "probe");
  const groups: bigint[] = new Array<bigint>(groupCount);
  await inParallel(groupCount, 16, async (g) => void (groups[g] = await clients.createChannel(probe!, `group-${g}`)));
  await inParallel(userCount, 32, (i) => clients.join(users[i]!, groups[Math.floor(i / group)]!));
  const setupSeconds = (Date.now() - t0) / 1000;
  log(`delivery: setup through the API took ${setupSeconds.toFixed(1)} s`);

  const gw = new URL(dep.gatewayUrl);
  const gatewayMetrics = () =>
    scrape(`http://${gw.host}/metrics`, ["chat_gateway_closes_total", "chat_gateway_backpressure_drops_total", "chat_gateway_connections"]);
  const gatewayBefore = await gatewayMetrics();
  const workers: ChildProcess[] = [];
  let probeProcess: ChildProcess | undefined;
  const stopWorkers = onCleanup("load workers and the probe", async () => {
    await Promise.all(
      [...workers, ...(probeProcess ? [probeProcess] : [])].map(async (w) => {
        if (w.exitCode !== null || w.signalCode !== null) return;
        const exited = new Promise((r) => w.once("exit", r));
        if (w.connected) w.send({ type: "close" });
        await Promise.race([exited, sleep(3000)]);
        await stopChild(w, 2000);
      }),
    );
  });
  const sessions = [h2session(dep.apiUrl), h2session(dep.apiUrl)];
  try {
    const targets = users.flatMap((u) => Array.from({ length: spu }, () => ({ host: gw.hostname, port: Number(gw.port), token: u.token })));
    const workerCount = Math.max(1, Math.min(P.workers, targets.length));
    for (let w = 0; w < workerCount; w++) {
      workers.push(track(fork(path.resolve("dist/bench/support/ws-load-worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] })));
    }
    const perWorker = Math.ceil(targets.length / workerCount);
    const c0 = Date.now();
    const opened = await Promise.all(
      workers.map((w, i) => {
        const mine = targets.slice(i * perWorker, (i + 1) * perWorker);
        return ask<{ open: number; failed: number }>(w, { type: "open", targets: mine, sockets: mine.length }, "opened");
      }),
    );
    const open = opened.reduce((a, o) => a + o.open, 0);
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    const connectPerSecond = Math.round(open / ((Date.now() - c0) / 1000));
    log(`delivery: ${open} sockets open (${failed} failed) at ${connectPerSecond}/s`);
    const stats = async () => {
      const s = await Promise.all(workers.map((w) => ask<WorkerStats>(w, { type: "stats" }, "stats")));
      return { frames: s.reduce((a, x) => a + x.frames, 0), closed: s.reduce((a, x) => a + x.closed, 0) };
    };

    // The probe: a member of every channel, in a process of its own; latency = receive time - send time in the text.
    const prober = track(fork(path.resolve("dist/bench/support/delivery-probe.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    probeProcess = prober;
    const probeOpened = ask(prober, { type: "open", url: dep.gatewayUrl, token: probe!.token }, "opened", 30_000, "delivery probe");
    const probeFailed = new Promise<never>((_, reject) =>
      prober.on("message", (m: { type: string; message?: string }) => m.type === "error" && reject(new Error(m.message))),
    );
    await Promise.race([probeOpened, probeFailed]);
    const probeStats = () => ask<ProbeStats>(prober, { type: "stats" }, "probe-stats", 30_000, "delivery probe");
    await sleep(2000);
    await Promise.all(workers.map((w) => ask(w, { type: "reset" }, "reset")));

    // Members per channel (the last one may be smaller), hence the deliveries owed.
    const socketsIn = (g: number) => (Math.min(userCount, (g + 1) * group) - g * group) * spu;
    const owed = (posts: number) => {
      let n = 0;
      for (let i = 0; i < posts; i++) n += socketsIn(i % groupCount);
      return n;
    };
    const total = Math.round(P.rate * P.seconds);
    const expected = owed(total);
    // Several streams, as several clients would: one stream keeps at most 64
    // posts in flight (MAX_STREAM_IN_FLIGHT), which alone would cap the rate at
    // 64 / write latency on a store with a slow write.
    const streams = Array.from({ length: Math.max(1, Math.min(P.streams, total)) }, (_, k) => openPostStream(sessions[k % sessions.length]!, probe!.token));
    // Where the time goes, from the servers' own histograms: the durable
    // write (API) and accept-to-hand-off (gateway; the id's timestamp is the
    // accept time, so this includes the write and the bus).
    const stages = async () => ({
      ...(await scrape(`${dep.apiUrl}/metrics`, ["chat_message_write_seconds_bucket"])),
      ...(await scrape(`http://${gw.host}/metrics`, ["chat_gateway_delivery_latency_seconds_bucket"])),
    });
    let postErrors = 0;
    let lagMs = 0;
    /** Posts `count` messages at P.rate, round-robin over the channels; resolves when all are answered. */
    const postPaced = async (count: number, label: string) => {
      const acks: Array<Promise<unknown>> = [];
      const start = Date.now();
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / P.rate;
        const wait = due - Date.now();
        if (wait > 1) await sleep(wait);
        else lagMs = Math.max(lagMs, -wait);
        acks.push(
          streams[i % streams.length]!.post(groups[i % groupCount]!, `t:${nowMs()} ${label} ${i}`).then((a) => {
            if (a.error) postErrors++;
          }),
        );
      }
      const seconds = (Date.now() - start) / 1000;
      await Promise.all(acks);
      return seconds;
    };
    /** Waits (at most 15 s) until the sockets have `frames` deliveries and the probe `posts`. */
    const drain = async (frames: number, posts: number) => {
      const deadline = Date.now() + 15_000;
      let [got, probed] = await Promise.all([stats(), probeStats()]);
      while ((got.frames < frames || probed.received < posts) && Date.now() < deadline) {
        await sleep(100);
        [got, probed] = await Promise.all([stats(), probeStats()]);
      }
      return { got, probed };
    };

    // Warm-up at the same rate, reported apart: the first posts into each
    // channel after the setup meet cold caches and JIT, and Cassandra still
    // flushing and compacting what the posts/s test wrote.
    const warmTotal = Math.round(P.rate * P["delivery-warmup-seconds"]);
    let warmUp: { posts: number; latencyMs: LatencySummary; latencySplitMs: AcceptSplit } | undefined;
    if (warmTotal > 0) {
      await ask(prober, { type: "count", on: true, reset: true }, "counting");
      await postPaced(warmTotal, "warm-up");
      const { probed } = await drain(owed(warmTotal), warmTotal);
      warmUp = {
        posts: warmTotal,
        latencyMs: summarize(probed.latencies),
        latencySplitMs: splitAtAccept(probed),
      };
      log(`delivery: warm-up, ${warmTotal} posts: ${fmt(warmUp.latencyMs)}; ${fmtSplit(warmUp.latencySplitMs)}`);
      await Promise.all(workers.map((w) => ask(w, { type: "reset" }, "reset")));
      postErrors = 0;
      lagMs = 0;
    }

    const stagesBefore = await stages();
    const meter = cpuMeter(meterPids);
    await ask(prober, { type: "count", on: true, reset: true }, "counting");
    const postingSeconds = await postPaced(total, "delivery");
    const cpuPercent = meter();
    const { got, probed } = await drain(expected, total);
    await ask(prober, { type: "count", on: false }, "counting");
    const latencies = probed.latencies;
    const probeReceived = probed.received;
    await Promise.all(streams.map((st) => st.end()));
    // The gateway's own count of closed sockets by reason, and of dropped frames.
    const gatewayCounters = grown(gatewayBefore, await gatewayMetrics());
    const stageSamples = grown(stagesBefore, await stages());
    const stageMs = (name: string) => {
      const at = (q: number) => {
        const v = histogramQuantile(stageSamples, name, q);
        return v === undefined ? undefined : Math.round(v * 1e5) / 100;
      };
      return { p50: at(0.5), p99: at(0.99) };
    };
    const out = {
      sockets: open,
      socketsFailed: failed,
      connectPerSecond,
      setupSeconds: Math.round(setupSeconds * 10) / 10,
      channels: groupCount,
      usersPerChannel: group,
      socketsPerUser: spu,
      postStreams: streams.length,
      postsPerSecondTarget: P.rate,
      postsPerSecondAchieved: Math.round(total / postingSeconds),
      maxPacingLagMs: Math.round(lagMs),
      posts: total,
      warmUp,
      postErrors,
      latencyMs: summarize(latencies),
      latencySplitMs: splitAtAccept(probed),
      probeReceived,
      probeLost: total - probeReceived,
      expectedDeliveries: expected,
      deliveries: got.frames,
      lostDeliveries: Math.max(0, expected - got.frames),
      extraDeliveries: Math.max(0, got.frames - expected),
      socketsClosed: got.closed,
      gatewayCounters,
      // From histogram buckets (interpolated): coarse, but they say which stage holds the tail.
      serverStagesMs: {
        durableWrite: stageMs("chat_message_write_seconds"),
        acceptToGatewayHandOff: stageMs("chat_gateway_delivery_latency_seconds"),
      },
      cpuPercent,
    };
    log(
      `delivery: ${P.rate} posts/s for ${P.seconds} s, ${open + 1} sockets: ${fmt(out.latencyMs)}; ` +
        `deliveries ${got.frames}/${expected} (lost ${out.lostDeliveries}), probe lost ${out.probeLost}, post errors ${postErrors}, ` +
        `sockets closed ${got.closed}; CPU% ${JSON.stringify(cpuPercent)}; server stages ms ${JSON.stringify(out.serverStagesMs)}; ` +
        fmtSplit(out.latencySplitMs),
    );
    if (got.closed > 0 || out.lostDeliveries > 0) log(`delivery: gateway counters during the test: ${JSON.stringify(gatewayCounters)}`);
    return out;
  } finally {
    for (const x of sessions) x.close();
    await stopWorkers();
  }
}

// ---------------------------------------------------------------------------

async function runMode(mode: Mode, infra: Infra | undefined): Promise<Record<string, unknown>> {
  log(`=== ${mode} ===`);
  const dep = mode === "embedded" ? await startEmbedded() : await startScaleOut(infra!);
  const stopDeployment = onCleanup(`${mode} deployment`, () => dep.stop());
  const meterPids = () => dep.pids;
  const result: Record<string, unknown> = { deployment: dep.description };
  try {
    const clients = setupClients(dep.apiUrl, ADMIN);
    // Posters: 16 users in 16 PERSISTED channels, all members of all.
    const posters = await clients.createUsers(16, "poster");
    const channels: bigint[] = [];
    for (let c = 0; c < 16; c++) channels.push(await clients.createChannel(posters[0]!, `load-${c}`));
    await inParallel(15 * 16, 16, (i) => clients.join(posters[1 + (i % 15)]!, channels[Math.floor(i / 15)]!));
    const historyChannel = await clients.createChannel(posters[0]!, "history");
    await inParallel(15, 15, (i) => clients.join(posters[1 + i]!, historyChannel));

    // 2a. The history first, so that it has aged by the time it is read (last),
    //     as the history a user scrolls back through has; the posts/s test then
    //     runs against a store that already holds it.
    const seeded = await seedHistory(dep, posters, historyChannel);
    result.historySeeding = seeded.seeded;
    // 1. Posts/s.
    result.posts = await measurePosts(dep, posters, channels, meterPids);
    // 3. Post-to-delivery.
    result.delivery = await measureDelivery(dep, clients, meterPids);
    // 2b. ListMessages over the history.
    result.list = await measureReads(dep, posters[1]!, { channel: historyChannel, ids: seeded.ids, seededAt: seeded.seededAt }, channels, meterPids);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`${mode} failed: ${String(result.error)}`);
    if (isStopping()) throw err;
  } finally {
    // Warnings and errors the servers logged during the run.
    result.serverLog = dep.processes.map((p) => {
      const bad = p.logs.filter((l) => typeof l.level === "number" && l.level >= 40);
      return {
        role: p.logs.find((l) => l.msg === "chat started")?.role,
        warnings: bad.filter((l) => l.level === 40).length,
        errors: bad.filter((l) => (l.level as number) >= 50).length,
        first: bad.slice(0, 5).map((l) => ({ level: l.level, msg: l.msg, err: (l.err as { message?: string } | undefined)?.message })),
        stderrTail: p.stderr().slice(-1000),
      };
    });
    for (const s of result.serverLog as Array<{ role?: unknown; warnings: number; errors: number; first: unknown[] }>) {
      if (s.warnings || s.errors) log(`${mode} ${String(s.role)} process logged ${s.warnings} warnings, ${s.errors} errors: ${JSON.stringify(s.first)}`);
    }
    await stopDeployment();
  }
  return result;
}

function versionsOf(): Record<string, unknown> {
  return {
    node: process.version,
    sqlite: sqliteVersion(),
    packages: packageVersions(["@connectrpc/connect", "@connectrpc/connect-node", "@bufbuild/protobuf", "better-sqlite3", "cassandra-driver", "nats", "uWebSockets.js"]),
  };
}

function cassandraSettings(): Record<string, string> {
  try {
    const yaml = readFileSync("infra/cassandra/cassandra.yaml.template", "utf8");
    return Object.fromEntries(
      yaml
        .split("\n")
        .filter((l) => /^commitlog_sync\w*:/.test(l))
        .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]),
    );
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  stopOnSignalsAndTimeout(P["timeout-minutes"]);

  const result: Record<string, unknown> = {
    kind: "cluster",
    machine: machineInfo(),
    versions: versionsOf(),
    config: {
      quick: QUICK,
      modes: MODES,
      params: P,
      existingCassandra: EXISTING_CASSANDRA ?? null,
      existingNats: EXISTING_NATS ?? null,
      cassandraSettings: cassandraSettings(),
      goalsScaleOut: GOALS,
    },
    modes: {} as Record<string, unknown>,
  };
  log(`cluster bench${QUICK ? " (--quick)" : ""}: ${JSON.stringify(P)}`);
  const modes = result.modes as Record<string, Record<string, unknown>>;
  try {
    for (const mode of MODES) {
      if (mode === "embedded") {
        modes.embedded = await runMode("embedded", undefined);
      } else {
        let infra: Infra | undefined;
        try {
          infra = await startInfra();
          (result.versions as Record<string, unknown>).infra = infra.versions;
          if (infra.cassandraContactPoint) {
            (result.versions as Record<string, unknown>).cassandra = await cassandraClient(infra.cassandraContactPoint, async (c) =>
              String((await c.execute("SELECT release_version FROM system.local")).first().get("release_version")),
            );
          }
          modes["scale-out"] = await runMode("scale-out", infra);
        } catch (err) {
          if (isStopping()) throw err;
          modes["scale-out"] = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
          console.error(`scale-out failed: ${String(modes["scale-out"].error)}`);
        } finally {
          await infra?.stop();
        }
      }
    }
  } finally {
    await cleanupAll();
  }
  result.durationSeconds = Math.round((Date.now() - started) / 1000);
  result.goalsMet = goalsMet(modes["scale-out"]);

  mkdirSync("bench/results", { recursive: true });
  const file = path.join("bench/results", `cluster-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
  console.log();
  console.log(table(modes));
  console.log();
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file} (${result.durationSeconds} s)`);
  const failed = MODES.filter((m) => modes[m]?.error !== undefined);
  if (failed.length > 0) {
    console.error(`failed: ${failed.join(", ")}`);
    process.exitCode = 1;
  }
}

// ---------------------------------------------------------------------------
// Reporting.

type Figures = {
  posts?: { withKeys: PostLoad; withoutKeys: PostLoad };
  list?: Record<"coldSequential" | "coldConcurrent" | "cachedSequential" | "cachedConcurrent", { latencyMs: LatencySummary; readsPerSecond?: number }> & {
    failures: number;
    wrongPages: number;
  };
  delivery?: {
    latencyMs: LatencySummary;
    lostDeliveries: number;
    probeLost: number;
    deliveries: number;
    expectedDeliveries: number;
    sockets: number;
    socketsClosed: number;
  };
  error?: string;
};

function goalsMet(scaleOut: Record<string, unknown> | undefined) {
  const f = scaleOut as Figures | undefined;
  if (!f || f.error !== undefined) return null;
  return {
    postsPerSecond: f.posts ? f.posts.withKeys.postsPerSecond >= GOALS.postsPerSecond : null,
    postsPerSecondWithoutKeys: f.posts ? f.posts.withoutKeys.postsPerSecond >= GOALS.postsPerSecond : null,
    listColdP99Ms: f.list ? f.list.coldSequential.latencyMs.p99 <= GOALS.listColdP99Ms : null,
    listCold16P99Ms: f.list ? f.list.coldConcurrent.latencyMs.p99 <= GOALS.listColdP99Ms : null,
    deliveryP99Ms: f.delivery ? f.delivery.latencyMs.p99 <= GOALS.deliveryP99Ms && f.delivery.lostDeliveries === 0 : null,
  };
}

function table(modes: Record<string, Record<string, unknown>>): string {
  const e = modes.embedded as Figures | undefined;
  const s = modes["scale-out"] as Figures | undefined;
  const n = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "-" : x.toLocaleString("en-US"));
  const ms = (l: LatencySummary | undefined) => (l ? `${l.p50} / ${l.p99}` : "-");
  const mark = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? " ok" : " MISSED");
  const rows: string[][] = [];
  const row = (what: string, get: (f: Figures) => string | undefined, goal = "", check?: (f: Figures) => boolean | undefined) => {
    const cell = (f: Figures | undefined) => (f === undefined ? "(not run)" : f.error !== undefined && get(f) === undefined ? "error" : (get(f) ?? "-"));
    rows.push([what, cell(e), cell(s), goal ? `${goal}${s && check ? mark(check(s)) : ""}` : ""]);
  };
  const rd = (k: "coldSequential" | "coldConcurrent" | "cachedSequential" | "cachedConcurrent") => (f: Figures) =>
    f.list ? ms(f.list[k].latencyMs) : undefined;
  row("posts/s, durable, with idempotency keys", (f) => (f.posts ? n(f.posts.withKeys.postsPerSecond) : undefined), `>= ${n(GOALS.postsPerSecond)}`, (f) =>
    f.posts ? f.posts.withKeys.postsPerSecond >= GOALS.postsPerSecond : undefined,
  );
  row("  ack p50 / p99 ms", (f) => (f.posts ? ms(f.posts.withKeys.ackLatencyMs) : undefined));
  row("posts/s, durable, no idempotency key", (f) => (f.posts ? n(f.posts.withoutKeys.postsPerSecond) : undefined), `>= ${n(GOALS.postsPerSecond)}`, (f) =>
    f.posts ? f.posts.withoutKeys.postsPerSecond >= GOALS.postsPerSecond : undefined,
  );
  row("  ack p50 / p99 ms", (f) => (f.posts ? ms(f.posts.withoutKeys.ackLatencyMs) : undefined));
  row("ListMessages cold, 1 at a time, p50 / p99 ms", rd("coldSequential"), `p99 <= ${GOALS.listColdP99Ms}`, (f) =>
    f.list ? f.list.coldSequential.latencyMs.p99 <= GOALS.listColdP99Ms : undefined,
  );
  row(`ListMessages cold, ${P.readers} at a time, p50 / p99 ms`, rd("coldConcurrent"), `p99 <= ${GOALS.listColdP99Ms}`, (f) =>
    f.list ? f.list.coldConcurrent.latencyMs.p99 <= GOALS.listColdP99Ms : undefined,
  );
  row(`  reads/s`, (f) => (f.list ? n(f.list.coldConcurrent.readsPerSecond) : undefined));
  row("ListMessages cached, 1 at a time, p50 / p99 ms", rd("cachedSequential"));
  row(`ListMessages cached, ${P.readers} at a time, p50 / p99 ms`, rd("cachedConcurrent"));
  row(`  reads/s`, (f) => (f.list ? n(f.list.cachedConcurrent.readsPerSecond) : undefined));
  row("  failed reads / wrong pages", (f) => (f.list ? `${f.list.failures} / ${f.list.wrongPages}` : undefined));
  row(`post-to-delivery p50 / p99 ms (${n(P.rate)}/s)`, (f) => (f.delivery ? ms(f.delivery.latencyMs) : undefined), `p99 <= ${GOALS.deliveryP99Ms}`, (f) =>
    f.delivery ? f.delivery.latencyMs.p99 <= GOALS.deliveryP99Ms : undefined,
  );
  row("  sockets (closed) / deliveries lost (probe lost)", (f) =>
    f.delivery
      ? `${n(f.delivery.sockets)} (${n(f.delivery.socketsClosed)}) / ${n(f.delivery.lostDeliveries)} of ${n(f.delivery.expectedDeliveries)} (${n(f.delivery.probeLost)})`
      : undefined, "0 lost", (f) => (f.delivery ? f.delivery.lostDeliveries === 0 && f.delivery.probeLost === 0 : undefined));
  const header = ["", "embedded", "scale-out", "goal (scale-out)"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function fmt(s: LatencySummary): string {
  return `p50 ${s.p50} ms, p99 ${s.p99} ms (n=${s.count})`;
}

runMain(main);

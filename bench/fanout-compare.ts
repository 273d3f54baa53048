/**
 * Fan-out against a peer baseline, in one run: the same connection and
 * fan-out scenarios, with the same load-generator processes and sizes, against
 *
 *   ours      the real program as `npm start` runs it (role all, SQLite,
 *             in-process bus), API and uWebSockets.js gateway in one process;
 *   baseline  bench/peers/ws-server.ts, NOT PART OF THE PRODUCT: a minimal
 *             server built on the `ws` package doing the same job (same JWT,
 *             same channels, same protobuf frames), each post encoded once and
 *             the same bytes sent to every socket with ws.send.
 *
 * The targets run one after the other (never at the same time), each with fresh
 * load-generator processes (bench/support/ws-load-worker.ts). Per target:
 *   1. connections: --sockets WebSockets opened and held (connect rate, ready
 *      rate = hello received, failures), server memory per idle connection
 *      (RSS and JS heap after a full GC, read through the inspector, the same
 *      way for both);
 *   2. post-to-delivery at a fixed rate: --rate posts/s for --seconds over the
 *      small channels (--group users each), a probe socket in every channel
 *      measures receive time minus the send time carried in the text; the load
 *      generators count deliveries (lost = owed - received);
 *   3. fan-out, one channel with every socket: --burst posts as fast as the
 *      server takes them (or at --fanout-rate posts/s); deliveries/s = deliveries
 *      / time from the first send to the last receipt;
 *   4. fan-out, many channels: --many-posts posts round-robin over the small
 *      channels, as fast as the server takes them.
 * Ratios ours/baseline for every headline figure.
 *
 * Run: npm run bench:fanout -- [--quick] [--sockets 10000] [--group 20] [--sockets-per-user 1] [--burst 100]
 *        [--fanout-rate 0] [--many-posts 5000] [--rate 1000] [--seconds 5] [--workers 2]
 *        [--delivery persisted|fast|ephemeral] [--targets ours,baseline] [--timeout-minutes 15]
 * Every flag also reads from CHAT_BENCH_<FLAG>. Writes bench/results/fanout-<timestamp>.json.
 * Loopback only; it stops every process it started, also on error, timeout and SIGINT.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createSigner } from "fast-jwt";
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import WebSocket from "ws";
import { ChannelService, DeliveryMode } from "../gen/chat/v1/channel_pb.js";
import { ServerFrameSchema } from "../gen/chat/v1/frame_pb.js";
import { UserService } from "../gen/chat/v1/user_pb.js";
import { startChatProcess } from "../infra/harness/chat-process.js";
import { stopChild } from "../infra/harness/processes.js";
import { inspectorUrl, memoryAfterGc, type MemoryAfterGc } from "./support/inspector.js";
import { ask } from "./support/ipc.js";
import { cleanupAll, isStopping, onCleanup, runMain, stopOnSignalsAndTimeout, tempDir, track } from "./support/lifecycle.js";
import { cpuSeconds } from "./support/proc.js";
import { packageVersions } from "./support/versions.js";
import { machineInfo } from "./support/machine.js";
import { inParallel } from "./support/parallel.js";
import { benchParams, envOf } from "./support/params.js";
import { openPostStream } from "./support/post-stream.js";
import { scrape } from "./support/scrape-workers.js";
import type { WorkerStats } from "./support/ws-load-worker.js";
import { nowMs, summarize, type LatencySummary } from "./support/stats.js";

// ---------------------------------------------------------------------------
// Parameters: CLI flag, else CHAT_BENCH_<FLAG>, else the --quick preset, else the default (support/params.ts).

const NUMERIC = {
  sockets: { full: 10_000, quick: 2000, what: "WebSockets held (load generators)" },
  group: { full: 20, quick: 20, what: "users per small channel" },
  "sockets-per-user": { full: 1, quick: 1, what: "sockets per user" },
  burst: { full: 100, quick: 100, what: "posts to the channel of every socket" },
  "fanout-rate": { full: 0, quick: 0, what: "posts/s for the one-channel fan-out (0: as fast as the server takes them)" },
  "many-posts": { full: 5000, quick: 2000, what: "posts over the small channels, as fast as the server takes them" },
  rate: { full: 1000, quick: 1000, what: "posts/s in the post-to-delivery test" },
  seconds: { full: 5, quick: 3, what: "seconds of the post-to-delivery test" },
  workers: { full: 2, quick: 2, what: "load-generator processes" },
  "timeout-minutes": { full: 15, quick: 6, what: "hard limit on the whole run" },
} as const;

const { cli, quick: QUICK, P } = benchParams(NUMERIC, { targets: { type: "string" }, delivery: { type: "string" } });
for (const flag of ["sockets", "group", "sockets-per-user", "workers"] as const) if (P[flag] < 1) throw new Error(`--${flag}: at least 1`);
type TargetName = "ours" | "baseline";
const TARGETS = ((cli.targets as string | undefined) ?? envOf("targets") ?? "ours,baseline").split(",").map((t) => t.trim()) as TargetName[];
for (const t of TARGETS) if (t !== "ours" && t !== "baseline") throw new Error(`--targets: expected ours and/or baseline, got ${t}`);
const DELIVERY = (cli.delivery as string | undefined) ?? envOf("delivery") ?? "persisted";
if (DELIVERY !== "persisted" && DELIVERY !== "fast" && DELIVERY !== "ephemeral") throw new Error(`--delivery: expected persisted, fast or ephemeral, got ${DELIVERY}`);

const ADMIN = "bench-admin-token-0123456789";
const JWT_SECRET = "bench-jwt-secret-0123456789-0123456789";
const USERS = Math.ceil(P.sockets / P["sockets-per-user"]);
const GROUPS = Math.ceil(USERS / P.group);
/** How long a burst may take before it is reported as incomplete. */
const BURST_LIMIT_MS = 60_000;
/** A burst that makes no progress for this long has lost what it has not delivered. */
const STALL_MS = 5000;
/** How often the load generators are asked for their counts while waiting for a burst. */
const POLL_MS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

// ---------------------------------------------------------------------------
// CPU per process (from /proc), so that figures on a shared machine can be read.

function cpuSecondsOf(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : cpuSeconds(pid);
}

/** CPU used during a phase, as % of one core: the server, the load generators together, this process. */
function cpuMeter(server: number | undefined, workers: ChildProcess[]) {
  const start = performance.now();
  const sum = (pids: Array<number | undefined>) => pids.reduce<number>((a, p) => a + (cpuSecondsOf(p) ?? 0), 0);
  const s0 = cpuSecondsOf(server);
  const w0 = sum(workers.map((w) => w.pid));
  const b0 = process.cpuUsage();
  return () => {
    const wall = (performance.now() - start) / 1000;
    const s1 = cpuSecondsOf(server);
    const b = process.cpuUsage(b0);
    const pct = (x: number) => Math.round((x / wall) * 100);
    return {
      server: s0 !== undefined && s1 !== undefined ? pct(s1 - s0) : null,
      loadGenerators: pct(sum(workers.map((w) => w.pid)) - w0),
      bench: pct((b.user + b.system) / 1e6),
    };
  };
}

// ---------------------------------------------------------------------------
// Who connects where: users, their tokens and channels, the same for both targets.

interface User {
  id: bigint;
  token: string;
}
interface Population {
  users: User[];
  probe: User;
  everyone: bigint;
  groups: bigint[];
  /** Where the users and tokens came from. */
  source: string;
}
const groupOf = (userIndex: number) => Math.floor(userIndex / P.group);
/** Sockets in each small channel (the last one may be smaller). */
const groupSockets = (g: number) => (Math.min(USERS, (g + 1) * P.group) - g * P.group) * P["sockets-per-user"];

/** Users, channels and memberships created through our API (the tokens also open the baseline). */
async function populateThroughApi(apiUrl: string): Promise<Population> {
  const auth = (token: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
  const transport = (token: string) => createConnectTransport({ baseUrl: apiUrl, httpVersion: "2", useBinaryFormat: true, interceptors: [auth(token)] });
  const shared = createConnectTransport({ baseUrl: apiUrl, httpVersion: "2", useBinaryFormat: true });
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  const admin = createClient(UserService, transport(ADMIN));
  const users = new Array<User>(USERS);
  await inParallel(USERS, 50, async (i) => {
    const { user } = await admin.createUser({ name: `load ${i}`, email: `load${i}@example.com` });
    const { token } = await admin.issueToken({ userId: user!.id, ttlSeconds: 6 * 3600 });
    users[i] = { id: user!.id, token };
  });
  const { user: probeUser } = await admin.createUser({ name: "probe", email: "probe@example.com" });
  const probe = { id: probeUser!.id, token: (await admin.issueToken({ userId: probeUser!.id, ttlSeconds: 6 * 3600 })).token };
  const channels = createClient(ChannelService, transport(probe.token));
  const delivery = DELIVERY === "ephemeral" ? DeliveryMode.EPHEMERAL : DELIVERY === "fast" ? DeliveryMode.FAST : DeliveryMode.PERSISTED;
  const everyone = (await channels.createChannel({ name: "everyone", delivery })).channel!.id;
  const groups = new Array<bigint>(GROUPS);
  await inParallel(GROUPS, 16, async (g) => void (groups[g] = (await channels.createChannel({ name: `group-${g}`, delivery })).channel!.id));
  const c = createClient(ChannelService, shared);
  await inParallel(USERS, 50, async (i) => {
    await c.joinChannel({ channelId: everyone }, as(users[i]!.token));
    await c.joinChannel({ channelId: groups[groupOf(i)]! }, as(users[i]!.token));
  });
  return { users, probe, everyone, groups, source: "our API (CreateUser, IssueToken, CreateChannel, JoinChannel)" };
}

/** Without our server in the run (--targets baseline): the same claims, signed here with the same secret. */
async function populateLocally(): Promise<Population> {
  const signer = createSigner({ key: JWT_SECRET, algorithm: "HS256", iss: "chat", aud: "chat.v1", expiresIn: 6 * 3600_000 });
  const sign = async (id: bigint) => signer({ sub: id.toString() });
  const users: User[] = [];
  for (let i = 0; i < USERS; i++) users.push({ id: BigInt(1000 + i), token: await sign(BigInt(1000 + i)) });
  const probe = { id: 999n, token: await sign(999n) };
  return { users, probe, everyone: 1n, groups: Array.from({ length: GROUPS }, (_, g) => BigInt(2 + g)), source: "signed by the benchmark (no API in this run)" };
}

// ---------------------------------------------------------------------------
// Targets.

interface Poster {
  post(channelId: bigint, text: string): Promise<unknown>;
  end(): Promise<void>;
}

interface Target {
  name: TargetName;
  description: Record<string, unknown>;
  host: string;
  port: number;
  pid: number | undefined;
  inspector: string;
  openPoster(token: string): Promise<Poster>;
  /** Server-side counters worth keeping (our gateway's /metrics, the baseline's /stats). */
  counters(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startOurs(): Promise<{ target: Target; apiUrl: string }> {
  const dataDir = tempDir("chat-fanout-bench-");
  const removeDir = onCleanup("data folder", async () => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    CHAT_ADMIN_TOKEN: ADMIN,
    CHAT_JWT_SECRET: JWT_SECRET,
    CHAT_DATA_DIR: dataDir,
    CHAT_STORE: "sqlite",
    CHAT_BUS: "local",
    CHAT_GATEWAY_HOST: "127.0.0.1",
    CHAT_GATEWAY_PORT: "0",
    CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(P["sockets-per-user"] + 5),
    CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES: String(16 * 1024 * 1024),
    CHAT_LOG_LEVEL: "info",
  };
  const node = await startChatProcess(env, ["--role", "all"], ["--inspect=127.0.0.1:0"]);
  track(node.child);
  const stopNode = onCleanup("our chat process", () => stopChild(node.child, 15_000));
  const gateway = new URL(node.gatewayUrls[0]!);
  const problems = () => node.logs.filter((l) => typeof l.level === "number" && l.level >= 40);
  return {
    apiUrl: node.url,
    target: {
      name: "ours",
      description: {
        program: "dist/bin/chat.js --role all (what npm start runs): API and uWebSockets.js gateway in one process",
        env: { ...env, CHAT_ADMIN_TOKEN: "(redacted)", CHAT_JWT_SECRET: "(redacted)" },
        nodeArgs: ["--inspect=127.0.0.1:0"],
        delivery: DELIVERY,
      },
      host: gateway.hostname,
      port: Number(gateway.port),
      pid: node.child.pid,
      inspector: await inspectorUrl(node.stderr),
      async openPoster(token) {
        const h2 = http2.connect(node.url);
        h2.on("error", () => {});
        const stream = openPostStream(h2, token);
        return {
          post: (channelId, text) => stream.post(channelId, text),
          async end() {
            await stream.end();
            h2.close();
          },
        };
      },
      async counters() {
        const metrics = await scrape(`http://${gateway.host}/metrics`, [
          "chat_gateway_connections",
          "chat_gateway_closes_total",
          "chat_gateway_backpressure_drops_total",
        ]);
        const logged = problems();
        return { metrics, warningsOrErrorsLogged: logged.length, firstLogged: logged.slice(0, 3) };
      },
      async stop() {
        await stopNode();
        await removeDir();
      },
    },
  };
}

async function startBaseline(pop: Population): Promise<Target> {
  const dir = tempDir("chat-fanout-baseline-");
  const removeDir = onCleanup("baseline folder", async () => rmSync(dir, { recursive: true, force: true }));
  const members: Record<string, string[]> = {};
  pop.users.forEach((u, i) => (members[u.id.toString()] = [pop.everyone.toString(), pop.groups[groupOf(i)]!.toString()]));
  members[pop.probe.id.toString()] = [pop.everyone, ...pop.groups].map(String);
  const membersFile = path.join(dir, "members.json");
  writeFileSync(membersFile, JSON.stringify(members));
  const nodeArgs = ["--inspect=127.0.0.1:0", "--expose-gc"];
  const env = { PATH: process.env.PATH ?? "", BASELINE_JWT_SECRET: JWT_SECRET, BASELINE_MEMBERS: membersFile, BASELINE_HOST: "127.0.0.1", BASELINE_PORT: "0" };
  const child = track(fork(path.resolve("dist/bench/peers/ws-server.js"), [], { execArgv: nodeArgs, env, stdio: ["ignore", "pipe", "pipe", "ipc"] }));
  const stopChildProcess = onCleanup("baseline server", () => stopChild(child, 10_000));
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdout!.resume();
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`baseline: not listening in time; stderr: ${stderr}`)), 20_000);
    child.on("message", (m: { type?: string; port?: number }) => {
      if (m.type === "listening") {
        clearTimeout(timer);
        resolve(m.port!);
      }
    });
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`baseline exited with ${code}; stderr: ${stderr}`))));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    name: "baseline",
    description: {
      program: "dist/bench/peers/ws-server.js (NOT the product: a minimal `ws` server, see its header)",
      env: { ...env, BASELINE_JWT_SECRET: "(redacted)" },
      nodeArgs,
    },
    host: "127.0.0.1",
    port,
    pid: child.pid,
    inspector: await inspectorUrl(() => stderr),
    async openPoster(token) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/publish`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
      await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
      const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
      let ref = 0;
      ws.on("message", (data: Buffer) => {
        const answer = JSON.parse(data.toString()) as { ref: number; error?: string };
        const w = waiting.get(answer.ref);
        waiting.delete(answer.ref);
        if (answer.error !== undefined) w?.reject(new Error(answer.error));
        else w?.resolve(answer);
      });
      ws.on("close", () => {
        for (const w of waiting.values()) w.reject(new Error("publisher socket closed"));
        waiting.clear();
      });
      return {
        post(channelId, text) {
          const my = ++ref;
          return new Promise((resolve, reject) => {
            waiting.set(my, { resolve, reject });
            ws.send(JSON.stringify({ ref: my, channel: channelId.toString(), text }));
          });
        },
        async end() {
          const closed = new Promise((r) => ws.once("close", r));
          ws.close();
          await closed;
        },
      };
    },
    async counters() {
      try {
        return { stats: await (await fetch(`${base}/stats`, { signal: AbortSignal.timeout(5000) })).json() };
      } catch {
        return {};
      }
    },
    async stop() {
      await stopChildProcess();
      await removeDir();
    },
  };
}

// ---------------------------------------------------------------------------
// Load generators (bench/support/ws-load-worker.ts), the same for both targets.

function startWorkers(): { workers: ChildProcess[]; stop: () => Promise<void> } {
  const workers: ChildProcess[] = [];
  for (let w = 0; w < P.workers; w++) {
    const w = track(fork(path.resolve("dist/bench/support/ws-load-worker.js"), [], { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    // A worker that is gone fails the calls to it (ask), not the benchmark process.
    w.on("error", () => {});
    workers.push(w);
  }
  const stop = onCleanup("load generators", async () => {
    await Promise.all(
      workers.map(async (w) => {
        if (w.exitCode !== null || w.signalCode !== null) return;
        const exited = new Promise((r) => w.once("exit", r));
        if (w.connected) w.send({ type: "close" });
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
        clearTimeout(timer);
        if (w.exitCode === null && w.signalCode === null) w.kill("SIGKILL");
      }),
    );
  });
  return { workers, stop };
}

// ---------------------------------------------------------------------------
// One target, every scenario.

interface Burst {
  posts: number;
  postsFailed: number;
  expectedDeliveries: number;
  deliveries: number;
  lost: number;
  /** From the first send to the first poll that saw the last delivery (or gave up). */
  seconds: number;
  /** From the first send to the last post's acknowledgement. */
  ackSeconds: number;
  deliveriesPerSecond: number;
  postsPerSecond: number;
  payloadBytesPerDelivery: number;
  complete: boolean;
  cpuPercent: Record<string, number | null>;
}

interface Figures {
  target: TargetName;
  description: Record<string, unknown>;
  idle: {
    connections: number;
    failed: number;
    connectSeconds: number;
    connectPerSecond: number;
    hellos: number;
    readyPerSecond: number;
    serverRssMiB: { before: number; after: number };
    serverHeapUsedMiB: { before: number; after: number };
    bytesPerConnection: { rss: number; heapUsed: number; external: number };
    cpuPercent: Record<string, number | null>;
  };
  latency: Burst & { postsPerSecondAsked: number; latencyMs: LatencySummary; probeReceived: number; probeLost: number };
  fanoutOneChannel: Burst & { sockets: number };
  fanoutManyChannels: Burst & { channels: number; socketsPerChannel: number };
  serverMemoryAtEndMiB: { rss: number; heapUsed: number };
  counters: Record<string, unknown>;
}

async function measure(target: Target, pop: Population): Promise<Figures> {
  const mib = (b: number) => Math.round(b / 104857.6) / 10;
  const name = target.name;
  const before = await memoryAfterGc(target.inspector);

  // 1. Connections.
  const { workers, stop: stopWorkers } = startWorkers();
  const stats = async () => {
    const s = await Promise.all(workers.map((w) => ask<WorkerStats>(w, { type: "stats" }, "stats")));
    return s.reduce((a, x) => ({ frames: a.frames + x.frames, bytes: a.bytes + x.bytes, open: a.open + x.open, closed: a.closed + x.closed }), {
      frames: 0,
      bytes: 0,
      open: 0,
      closed: 0,
    });
  };
  const reset = () => Promise.all(workers.map((w) => ask(w, { type: "reset" }, "reset")));
  const targets = pop.users.flatMap((u) => Array.from({ length: P["sockets-per-user"] }, () => ({ host: target.host, port: target.port, token: u.token })));
  const perWorker = Math.ceil(targets.length / workers.length);
  const idleCpu = cpuMeter(target.pid, workers);
  const t0 = performance.now();
  const opened = await Promise.all(
    workers.map((w, i) => {
      const mine = targets.slice(i * perWorker, (i + 1) * perWorker);
      return ask<{ open: number; failed: number; ms: number }>(w, { type: "open", targets: mine, sockets: mine.length }, "opened", 300_000);
    }),
  );
  const connectSeconds = (performance.now() - t0) / 1000;
  const open = opened.reduce((a, o) => a + o.open, 0);
  const failed = opened.reduce((a, o) => a + o.failed, 0);
  // Idle once the hello came (our gateway sends it after reading the user's channels).
  let hellos = 0;
  for (let i = 0; i < 1500 && hellos < open; i++) {
    if (i > 0) await sleep(20);
    hellos = (await stats()).frames;
  }
  const readySeconds = (performance.now() - t0) / 1000;
  const cpuIdle = idleCpu();
  await sleep(2000);
  const after = await memoryAfterGc(target.inspector);
  const perConnection = (k: keyof MemoryAfterGc) => Math.round((after[k] - before[k]) / Math.max(1, open));
  const idle: Figures["idle"] = {
    connections: open,
    failed,
    connectSeconds: round3(connectSeconds),
    connectPerSecond: Math.round(open / connectSeconds),
    hellos,
    readyPerSecond: Math.round(Math.min(hellos, open) / readySeconds),
    serverRssMiB: { before: mib(before.rss), after: mib(after.rss) },
    serverHeapUsedMiB: { before: mib(before.heapUsed), after: mib(after.heapUsed) },
    bytesPerConnection: { rss: perConnection("rss"), heapUsed: perConnection("heapUsed"), external: perConnection("external") },
    cpuPercent: cpuIdle,
  };
  log(
    `${name}: ${open} sockets held (${failed} failed) in ${idle.connectSeconds} s = ${idle.connectPerSecond}/s, ${hellos} hellos (${idle.readyPerSecond}/s); ` +
      `per idle connection after full GC: RSS ${idle.bytesPerConnection.rss} B, heap ${idle.bytesPerConnection.heapUsed} B (RSS ${idle.serverRssMiB.before} -> ${idle.serverRssMiB.after} MiB)`,
  );

  // The probe: a member of every channel, in this process; measures post-to-delivery.
  const probe = new WebSocket(`ws://${target.host}:${target.port}/ws`, ["chat.v1.proto"], {
    headers: { authorization: `Bearer ${pop.probe.token}` },
    perMessageDeflate: false,
  });
  const latencies: number[] = [];
  let measuring = false;
  let helloSeen!: () => void;
  const hello = new Promise<void>((r) => (helloSeen = r));
  probe.on("message", (data: Buffer) => {
    const f = fromBinary(ServerFrameSchema, new Uint8Array(data));
    if (f.frame.case === "hello") helloSeen();
    if (!measuring || f.frame.case !== "event" || f.frame.value.payload.case !== "messagePosted") return;
    const text = f.frame.value.payload.value.message?.text ?? "";
    if (text.startsWith("t:")) latencies.push(nowMs() - Number(text.slice(2, text.indexOf(" "))));
  });
  await new Promise((resolve, reject) => (probe.once("open", resolve), probe.once("error", reject)));
  await Promise.race([hello, sleep(10_000).then(() => Promise.reject(new Error(`${name}: no hello on the probe socket`)))]);
  const poster = await target.openPoster(pop.probe.token);

  /**
   * Posts `count` messages (at `rate` posts/s, or all at once when 0), then waits
   * until the load generators have `expected` frames, or nothing moves for STALL_MS.
   */
  const run = async (count: number, rate: number, channelOf: (i: number) => bigint, expected: number, text: (i: number) => string): Promise<Burst> => {
    await reset();
    const cpu = cpuMeter(target.pid, workers);
    let postsFailed = 0;
    const acks: Array<Promise<unknown>> = [];
    const start = performance.now();
    let lastAck = start;
    for (let i = 0; i < count; i++) {
      if (rate > 0) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 1) await sleep(wait);
      }
      acks.push(
        poster.post(channelOf(i), text(i)).then(
          () => void (lastAck = performance.now()),
          () => void postsFailed++,
        ),
      );
    }
    await Promise.race([Promise.all(acks), sleep(BURST_LIMIT_MS)]);
    let got = await stats();
    let seenAt = performance.now();
    let progressAt = seenAt;
    while (got.frames < expected && performance.now() - start < BURST_LIMIT_MS && performance.now() - progressAt < STALL_MS) {
      await sleep(POLL_MS);
      const next = await stats();
      seenAt = performance.now();
      if (next.frames > got.frames) progressAt = seenAt;
      got = next;
    }
    const complete = got.frames >= expected;
    // Incomplete: the time up to the last progress seen, not the stall that followed.
    const end = complete ? seenAt : progressAt;
    const seconds = (end - start) / 1000;
    return {
      posts: count,
      postsFailed,
      expectedDeliveries: expected,
      deliveries: got.frames,
      lost: expected - got.frames,
      seconds: round3(seconds),
      ackSeconds: round3((lastAck - start) / 1000),
      deliveriesPerSecond: Math.round(got.frames / seconds),
      postsPerSecond: Math.round(count / seconds),
      payloadBytesPerDelivery: got.frames ? Math.round((got.bytes / got.frames) * 10) / 10 : 0,
      complete,
      cpuPercent: cpu(),
    };
  };
  const groupsOf = (count: number) => {
    let owed = 0;
    for (let i = 0; i < count; i++) owed += groupSockets(i % GROUPS);
    return owed;
  };
  const stamp = (i: number) => `t:${nowMs()} message ${i}`;

  // 2. Post-to-delivery at a fixed rate over the small channels (after a one-second warm-up at the same rate).
  await run(Math.max(1, Math.round(P.rate)), P.rate, (i) => pop.groups[i % GROUPS]!, groupsOf(Math.max(1, Math.round(P.rate))), stamp);
  await sleep(500);
  latencies.length = 0;
  measuring = true;
  const latencyPosts = Math.round(P.rate * P.seconds);
  const fixed = await run(latencyPosts, P.rate, (i) => pop.groups[i % GROUPS]!, groupsOf(latencyPosts), stamp);
  await sleep(200);
  measuring = false;
  const latency = { ...fixed, postsPerSecondAsked: P.rate, latencyMs: summarize(latencies), probeReceived: latencies.length, probeLost: latencyPosts - latencies.length };
  log(
    `${name}: ${P.rate} posts/s for ${P.seconds} s over ${GROUPS} channels: post-to-delivery p50 ${latency.latencyMs.p50} ms, p99 ${latency.latencyMs.p99} ms; ` +
      `deliveries ${fixed.deliveries}/${fixed.expectedDeliveries} (lost ${fixed.lost}, probe lost ${latency.probeLost})`,
  );

  // 3. One channel, every socket.
  await sleep(500);
  const oneExpected = P.burst * open;
  const one = { ...(await run(P.burst, P["fanout-rate"], () => pop.everyone, oneExpected, (i) => `burst ${i}`)), sockets: open };
  log(
    `${name}: fan-out, one channel x ${open} sockets, ${P.burst} posts${P["fanout-rate"] ? ` at ${P["fanout-rate"]}/s` : ""}: ` +
      `${one.deliveries} deliveries in ${one.seconds} s = ${one.deliveriesPerSecond}/s (lost ${one.lost})`,
  );

  // 4. Many channels, few sockets each.
  await sleep(500);
  const many = {
    ...(await run(P["many-posts"], 0, (i) => pop.groups[i % GROUPS]!, groupsOf(P["many-posts"]), (i) => `many ${i}`)),
    channels: GROUPS,
    socketsPerChannel: P.group * P["sockets-per-user"],
  };
  log(`${name}: fan-out, ${GROUPS} channels x ${many.socketsPerChannel} sockets, ${P["many-posts"]} posts: ${many.deliveries} deliveries in ${many.seconds} s = ${many.deliveriesPerSecond}/s (lost ${many.lost})`);

  await poster.end().catch(() => {});
  probe.close();
  const end = await memoryAfterGc(target.inspector);
  const counters = { ...(await target.counters()), socketsClosedDuringRun: (await stats()).closed };
  await stopWorkers();
  return {
    target: name,
    description: target.description,
    idle,
    latency,
    fanoutOneChannel: one,
    fanoutManyChannels: many,
    serverMemoryAtEndMiB: { rss: mib(end.rss), heapUsed: mib(end.heapUsed) },
    counters,
  };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------
// Ratios and the table.

/** Headline figures: where to find them, and which way is better. */
const HEADLINES: Array<{ key: string; what: string; get: (f: Figures) => number; better: "higher" | "lower" }> = [
  { key: "connectPerSecond", what: "connect rate (sockets/s)", get: (f) => f.idle.connectPerSecond, better: "higher" },
  { key: "readyPerSecond", what: "ready rate (hellos/s)", get: (f) => f.idle.readyPerSecond, better: "higher" },
  { key: "bytesPerConnectionRss", what: "memory per idle connection, RSS (B)", get: (f) => f.idle.bytesPerConnection.rss, better: "lower" },
  { key: "bytesPerConnectionHeap", what: "memory per idle connection, JS heap (B)", get: (f) => f.idle.bytesPerConnection.heapUsed, better: "lower" },
  { key: "latencyP50Ms", what: "post-to-delivery p50 (ms)", get: (f) => f.latency.latencyMs.p50, better: "lower" },
  { key: "latencyP99Ms", what: "post-to-delivery p99 (ms)", get: (f) => f.latency.latencyMs.p99, better: "lower" },
  { key: "oneChannelDeliveriesPerSecond", what: "fan-out one channel (deliveries/s)", get: (f) => f.fanoutOneChannel.deliveriesPerSecond, better: "higher" },
  { key: "manyChannelsDeliveriesPerSecond", what: "fan-out many channels (deliveries/s)", get: (f) => f.fanoutManyChannels.deliveriesPerSecond, better: "higher" },
];

function ratios(ours: Figures, baseline: Figures) {
  return Object.fromEntries(
    HEADLINES.map((h) => {
      const a = h.get(ours);
      const b = h.get(baseline);
      const ratio = b !== 0 && Number.isFinite(a) && Number.isFinite(b) ? Math.round((a / b) * 100) / 100 : null;
      const oursBetter = ratio === null ? null : h.better === "higher" ? ratio > 1 : ratio < 1;
      return [h.key, { ours: a, baseline: b, ratio, better: h.better, oursBetter }];
    }),
  );
}

function table(results: Partial<Record<TargetName, Figures>>): string {
  const o = results.ours;
  const b = results.baseline;
  const n = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "-" : x.toLocaleString("en-US"));
  const rows: string[][] = [];
  const row = (what: string, get: (f: Figures) => string, ratio?: (f: Figures) => number) => {
    const r = o && b && ratio ? (ratio(b) !== 0 ? (ratio(o) / ratio(b)).toFixed(2) : "-") : "";
    rows.push([what, o ? get(o) : "(not run)", b ? get(b) : "(not run)", r]);
  };
  const lost = (x: Burst) => `${n(x.lost)} of ${n(x.expectedDeliveries)}${x.postsFailed ? `, ${n(x.postsFailed)} posts failed` : ""}`;
  row("sockets held (failed)", (f) => `${n(f.idle.connections)} (${n(f.idle.failed)})`);
  row("connect rate, sockets/s", (f) => n(f.idle.connectPerSecond), (f) => f.idle.connectPerSecond);
  row("ready rate (hello received), /s", (f) => n(f.idle.readyPerSecond), (f) => f.idle.readyPerSecond);
  row("memory per idle connection, RSS B", (f) => n(f.idle.bytesPerConnection.rss), (f) => f.idle.bytesPerConnection.rss);
  row("  JS heap B", (f) => n(f.idle.bytesPerConnection.heapUsed), (f) => f.idle.bytesPerConnection.heapUsed);
  row("  server RSS with sockets held, MiB", (f) => `${f.idle.serverRssMiB.after}`, (f) => f.idle.serverRssMiB.after);
  row(`post-to-delivery p50 ms (${n(P.rate)}/s, ${GROUPS} ch)`, (f) => `${f.latency.latencyMs.p50}`, (f) => f.latency.latencyMs.p50);
  row("  p99 ms", (f) => `${f.latency.latencyMs.p99}`, (f) => f.latency.latencyMs.p99);
  row("  deliveries lost (probe lost)", (f) => `${lost(f.latency)} (${n(f.latency.probeLost)})`);
  row("  server CPU %", (f) => n(f.latency.cpuPercent.server ?? NaN));
  row(`fan-out one channel x sockets, deliveries/s`, (f) => n(f.fanoutOneChannel.deliveriesPerSecond), (f) => f.fanoutOneChannel.deliveriesPerSecond);
  row("  seconds (posts acked after)", (f) => `${f.fanoutOneChannel.seconds} (${f.fanoutOneChannel.ackSeconds})`);
  row("  deliveries lost", (f) => lost(f.fanoutOneChannel));
  row(`fan-out ${GROUPS} ch x ${P.group * P["sockets-per-user"]}, deliveries/s`, (f) => n(f.fanoutManyChannels.deliveriesPerSecond), (f) => f.fanoutManyChannels.deliveriesPerSecond);
  row("  posts/s", (f) => n(f.fanoutManyChannels.postsPerSecond), (f) => f.fanoutManyChannels.postsPerSecond);
  row("  deliveries lost", (f) => lost(f.fanoutManyChannels));
  row("payload bytes per delivery", (f) => `${f.fanoutManyChannels.payloadBytesPerDelivery}`, (f) => f.fanoutManyChannels.payloadBytesPerDelivery);
  const header = ["", "ours", "baseline (ws)", "ours/baseline"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function versionsOf(): Record<string, unknown> {
  return {
    node: process.version,
    packages: packageVersions(["uWebSockets.js", "ws", "fast-jwt", "@bufbuild/protobuf", "@connectrpc/connect-node", "better-sqlite3"]),
  };
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  stopOnSignalsAndTimeout(P["timeout-minutes"]);

  const result: Record<string, unknown> = {
    kind: "fanout-compare",
    machine: machineInfo(),
    versions: versionsOf(),
    config: {
      quick: QUICK,
      targets: TARGETS,
      delivery: DELIVERY,
      params: P,
      users: USERS,
      smallChannels: GROUPS,
      pollMs: POLL_MS,
      note: "baseline = bench/peers/ws-server.ts, a minimal `ws` server; NOT the product",
    },
  };
  log(`fan-out vs baseline${QUICK ? " (--quick)" : ""}: ${JSON.stringify(P)}, targets ${TARGETS.join(", ")}, delivery ${DELIVERY}`);
  const figures: Partial<Record<TargetName, Figures>> = {};
  const errors: Record<string, string> = {};
  let pop: Population | undefined;
  try {
    for (const name of TARGETS) {
      try {
        let target: Target;
        if (name === "ours") {
          const ours = await startOurs();
          target = ours.target;
          if (!pop) {
            const t = Date.now();
            log(`setup through our API: ${USERS} users, ${GROUPS} channels of ${P.group}, one channel of all, a probe in every channel`);
            pop = await populateThroughApi(ours.apiUrl);
            log(`setup took ${((Date.now() - t) / 1000).toFixed(1)} s`);
          }
        } else {
          pop ??= await populateLocally();
          target = await startBaseline(pop);
        }
        try {
          figures[name] = await measure(target, pop);
        } finally {
          await target.stop();
        }
      } catch (err) {
        if (isStopping()) throw err;
        errors[name] = err instanceof Error ? (err.stack ?? err.message) : String(err);
        console.error(`${name} failed: ${errors[name]}`);
      }
    }
  } finally {
    await cleanupAll();
  }
  result.populationSource = pop?.source;
  result.results = figures;
  if (figures.ours && figures.baseline) result.ratios = ratios(figures.ours, figures.baseline);
  if (Object.keys(errors).length) result.errors = errors;
  result.durationSeconds = Math.round((Date.now() - started) / 1000);

  mkdirSync("bench/results", { recursive: true });
  const file = path.join("bench/results", `fanout-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
  console.log();
  console.log(table(figures));
  console.log();
  console.log("ours/baseline: > 1 is better for rates, < 1 is better for memory and latency. The baseline is not the product.");
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file} (${result.durationSeconds} s)`);
  if (Object.keys(errors).length) process.exitCode = 1;
}

runMain(main);

/**
 * Gateway benchmark (single-node mode: API + gateway in one process, the real
 * program started as a child).
 *
 *   1. idle connections: --sockets authenticated WebSockets from load-generator
 *      processes (bench/support/ws-load-worker.ts); server memory per
 *      connection after a full GC (read through the inspector);
 *   2. post-to-delivery latency at --rate posts/s for --seconds, every socket
 *      connected: a probe socket in this process receives every post and
 *      measures receive time minus the send time carried in the text; the load
 *      generators count deliveries, which must equal posts x subscribers;
 *   3. fan-out, one channel with every socket subscribed: --burst messages as
 *      fast as the API takes them, deliveries/s until the last socket has all;
 *   4. fan-out, many channels with few subscribers each.
 *
 * Run: npm run bench:gateway -- [--sockets 10000] [--rate 1000] [--seconds 10] [--burst 100]
 *        [--sockets-per-user 2] [--group 10] [--workers 2] [--split]
 * With --split, an API process and a gateway process meet on a real nats-server.
 * Writes bench/results/gateway-<timestamp>.json. Loopback only; it stops what it started.
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { ChannelService } from "../gen/chat/v1/channel_pb.js";
import { ServerFrameSchema } from "../gen/chat/v1/frame_pb.js";
import { UserService } from "../gen/chat/v1/user_pb.js";
import { fromBinary } from "@bufbuild/protobuf";
import { startChatProcess } from "../infra/harness/chat-process.js";
import { startNatsServer } from "../infra/harness/nats-server.js";
import { inspectorUrl, memoryAfterGc } from "./support/inspector.js";
import { machineInfo } from "./support/machine.js";
import { openPostStream } from "./support/post-stream.js";
import { cpuSeconds } from "./support/proc.js";
import { median, nowMs, summarize } from "./support/stats.js";
import type { WorkerStats } from "./support/ws-load-worker.js";

const { values: args } = parseArgs({
  options: {
    sockets: { type: "string", default: "10000" },
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "10" },
    burst: { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    workers: { type: "string", default: "2" },
    "sockets-per-user": { type: "string", default: "2" },
    split: { type: "boolean", default: false },
    group: { type: "string", default: "10" },
  },
});
const SOCKETS = Number(args.sockets);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const BURST = Number(args.burst);
const ROUNDS = Number(args.rounds);
/** Seconds over which the gateway's CPU is measured with every socket idle. */
const IDLE_CPU_SECONDS = 10;
/** API and gateway in separate processes over a real NATS server. */
const SPLIT = args.split === true;
const WORKERS = Number(args.workers);
const ADMIN = "bench-admin-token-0123456789";
/** Devices per user (desktop and phone, say). */
const SOCKETS_PER_USER = Number(args["sockets-per-user"]);
/** Users per small channel. */
const GROUP_SIZE = Number(args.group);

function ask<T>(child: ChildProcess, message: object, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type === reply) {
        child.off("message", on);
        resolve(m as T);
      }
    };
    child.on("message", on);
    child.send(message);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-gw-bench-"));
  const gatewayEnv = {
    CHAT_ADMIN_TOKEN: ADMIN,
    CHAT_GATEWAY_HOST: "127.0.0.1",
    CHAT_GATEWAY_PORT: "0",
    CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(SOCKETS_PER_USER + 5),
    CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES: String(16 * 1024 * 1024),
    CHAT_LOG_LEVEL: "info",
  };
  // Single node: API and gateway in one process. Split: an API process and a
  // gateway process joined by a real nats-server, as in a scale-out deployment.
  const nats = SPLIT ? await startNatsServer() : undefined;
  const busEnv: Record<string, string> = nats
    ? { CHAT_BUS: "nats", CHAT_NATS_URL: nats.url, CHAT_JWT_SECRET: "bench-jwt-secret-0123456789-0123456789" }
    : {};
  const server = SPLIT
    ? await startChatProcess({ ...gatewayEnv, ...busEnv, CHAT_DATA_DIR: dataDir }, ["--role", "api"])
    : await startChatProcess({ ...gatewayEnv, CHAT_DATA_DIR: dataDir }, [], ["--inspect=127.0.0.1:0"]);
  const edge = SPLIT
    ? await startChatProcess({ ...gatewayEnv, ...busEnv, CHAT_API_URL: server.url, CHAT_DATA_DIR: dataDir }, ["--role", "gateway"], ["--inspect=127.0.0.1:0"])
    : server;
  const inspector = await inspectorUrl(edge.stderr);
  const gateway = new URL(edge.gatewayUrls[0]!);
  const [host, port] = [gateway.hostname, gateway.port];
  const workers: ChildProcess[] = [];
  const result: Record<string, unknown> = {
    machine: machineInfo(),
    params: { SOCKETS, RATE, SECONDS, BURST, WORKERS, SOCKETS_PER_USER, GROUP_SIZE, SPLIT },
  };
  const h2 = http2.connect(server.url);
  try {
    const auth = (token: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
    // One HTTP/2 connection for all setup calls; the token goes per call.
    const shared = createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true });
    const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const transport = (token: string) => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true, interceptors: [auth(token)] });
    const admin = createClient(UserService, transport(ADMIN));
    const userCount = Math.ceil(SOCKETS / SOCKETS_PER_USER);
    const groupCount = Math.ceil(userCount / GROUP_SIZE);

    // Setup: users, one big channel everyone is in, small channels of GROUP_SIZE users, a probe user in all small channels.
    console.log(`setup: ${userCount} users, ${groupCount} channels of ${GROUP_SIZE} users, one channel of all`);
    const users: Array<{ id: bigint; token: string }> = [];
    for (let i = 0; i < userCount; i += 50) {
      users.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, userCount - i) }, async (_, j) => {
            const { user } = await admin.createUser({ name: `load ${i + j}`, email: `load${i + j}@example.com` });
            const { token } = await admin.issueToken({ userId: user!.id });
            return { id: user!.id, token };
          }),
        )),
      );
    }
    const { user: probeUser } = await admin.createUser({ name: "probe", email: "probe@example.com" });
    const probeToken = (await admin.issueToken({ userId: probeUser!.id })).token;
    const probeChannels = createClient(ChannelService, transport(probeToken));
    const everyone = (await probeChannels.createChannel({ name: "everyone" })).channel!.id;
    const groups: bigint[] = [];
    for (let g = 0; g < groupCount; g++) groups.push((await probeChannels.createChannel({ name: `group-${g}` })).channel!.id);
    for (let i = 0; i < users.length; i += 50) {
      await Promise.all(
        users.slice(i, i + 50).map(async (u, j) => {
          const c = createClient(ChannelService, shared);
          await c.joinChannel({ channelId: everyone }, as(u.token));
          await c.joinChannel({ channelId: groups[Math.floor((i + j) / GROUP_SIZE)]! }, as(u.token));
        }),
      );
    }

    // 1. Idle connections.
    const before = await memoryAfterGc(inspector);
    const targets = users.flatMap((u) => Array.from({ length: SOCKETS_PER_USER }, () => ({ host, port: Number(port), token: u.token })));
    for (let w = 0; w < WORKERS; w++) {
      workers.push(fork(path.resolve("dist/bench/support/ws-load-worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    }
    const perWorker = Math.ceil(targets.length / WORKERS);
    const t0 = Date.now();
    const opened = await Promise.all(
      workers.map((w, i) =>
        ask<{ open: number; failed: number; ms: number }>(
          w,
          { type: "open", targets: targets.slice(i * perWorker, (i + 1) * perWorker), sockets: Math.min(perWorker, targets.length - i * perWorker) },
          "opened",
        ),
      ),
    );
    const connectSeconds = (Date.now() - t0) / 1000;
    const open = opened.reduce((a, o) => a + o.open, 0);
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    // A socket is idle once its session started: it has its hello (its first
    // frame), sent after the gateway read its channels. Until then it may still
    // wait for that read, and its memory is not yet what an idle socket holds.
    let hellos = 0;
    let closedEarly = 0;
    for (let i = 0; i < 1500 && hellos + closedEarly < open; i++) {
      if (i > 0) await sleep(20);
      const s = await Promise.all(workers.map((w) => ask<WorkerStats>(w, { type: "stats" }, "stats")));
      hellos = s.reduce((a, x) => a + x.frames, 0);
      closedEarly = s.reduce((a, x) => a + x.closed, 0);
    }
    const readySeconds = (Date.now() - t0) / 1000;
    if (hellos < open) {
      console.log(`idle: ${open - hellos} sockets without a hello (${closedEarly} closed); the servers' warnings and errors:`);
      for (const p of new Set([edge, server])) {
        for (const line of p.logs.filter((l) => Number(l.level) >= 40).slice(0, 5)) console.log(`  ${JSON.stringify(line).slice(0, 1000)}`);
      }
    }
    await sleep(2000);
    const after = await memoryAfterGc(inspector);
    // What holding idle sockets costs the gateway's CPU: pings, the backpressure
    // sweep, token expiry checks (the load generators answer pings, nothing else).
    const edgePid = edge.child.pid!;
    const cpu0 = cpuSeconds(edgePid);
    await sleep(IDLE_CPU_SECONDS * 1000);
    const cpu1 = cpuSeconds(edgePid);
    const idleCpuPercent = cpu0 === undefined || cpu1 === undefined ? undefined : Math.round(((cpu1 - cpu0) / IDLE_CPU_SECONDS) * 1000) / 10;
    const mib = (b: number) => Math.round(b / 104857.6) / 10;
    const perConnection = (k: keyof typeof after) => Math.round((after[k] - before[k]) / Math.max(1, open));
    const idle = {
      connections: open,
      failed,
      connectPerSecond: Math.round(open / connectSeconds),
      /** Sockets with their hello (session started) per second, from the first connect to the last hello. */
      readyPerSecond: Math.round(Math.min(hellos, open) / readySeconds),
      hellos,
      socketsClosed: closedEarly,
      serverRssMiB: { before: mib(before.rss), after: mib(after.rss) },
      serverHeapUsedMiB: { before: mib(before.heapUsed), after: mib(after.heapUsed) },
      bytesPerConnection: { rss: perConnection("rss"), heapUsed: perConnection("heapUsed"), external: perConnection("external") },
      /** The gateway process's CPU (% of one core) over IDLE_CPU_SECONDS with every socket idle. */
      idleCpuPercent,
    };
    result.idle = idle;
    console.log(
      `idle: ${open} sockets held (${failed} failed) at ${idle.connectPerSecond}/s, ${hellos} hellos (${idle.readyPerSecond}/s); after full GC, per connection: ` +
        `RSS ${idle.bytesPerConnection.rss} B (heap ${idle.bytesPerConnection.heapUsed} B, external ${idle.bytesPerConnection.external} B); ` +
        `RSS ${idle.serverRssMiB.before} -> ${idle.serverRssMiB.after} MiB; gateway CPU while idle ${idleCpuPercent}% of a core`,
    );

    const deliveries = async () => {
      const s = await Promise.all(workers.map((w) => ask<WorkerStats>(w, { type: "stats" }, "stats")));
      return { frames: s.reduce((a, x) => a + x.frames, 0), closed: s.reduce((a, x) => a + x.closed, 0) };
    };
    const reset = () => Promise.all(workers.map((w) => ask(w, { type: "reset" }, "reset")));

    // 2. Latency at RATE posts/s across the small channels; a probe socket receives them all.
    const probe = new WebSocket(`ws://${host}:${port}/ws`, ["chat.v1.proto"], { headers: { authorization: `Bearer ${probeToken}` } });
    const latencies: number[] = [];
    let probeCount = 0;
    probe.on("message", (data: Buffer) => {
      const f = fromBinary(ServerFrameSchema, new Uint8Array(data));
      if (f.frame.case === "event" && f.frame.value.payload.case === "messagePosted") {
        const text = f.frame.value.payload.value.message?.text ?? "";
        const sent = Number(text.slice(2, text.indexOf(" ")));
        if (text.startsWith("t:")) {
          latencies.push(nowMs() - sent);
          probeCount++;
        }
      }
    });
    await new Promise((r) => probe.once("open", r));
    await sleep(500);
    const stream = openPostStream(h2, probeToken);
    const rounds: Array<Record<string, unknown>> = [];
    for (let round = 0; round < ROUNDS; round++) {
      await reset();
      latencies.length = 0;
      probeCount = 0;
      const total = RATE * SECONDS;
      const posting = Date.now();
      const acks: Array<Promise<unknown>> = [];
      for (let i = 0; i < total; i++) {
        const due = posting + (i * 1000) / RATE;
        const wait = due - Date.now();
        if (wait > 1) await sleep(wait);
        acks.push(stream.post(groups[i % groups.length]!, `t:${nowMs()} message ${i}`));
      }
      await Promise.all(acks);
      const expected = total * GROUP_SIZE * SOCKETS_PER_USER;
      let got = await deliveries();
      for (let i = 0; i < 100 && got.frames < expected; i++) {
        await sleep(100);
        got = await deliveries();
      }
      const r = {
        posts: total,
        probeReceived: probeCount,
        latencyMs: summarize(latencies),
        expectedDeliveries: expected,
        deliveries: got.frames,
        lost: expected - got.frames,
        socketsClosed: got.closed,
      };
      rounds.push(r);
      console.log(
        `latency round ${round + 1}: ${RATE} posts/s with ${open + 1} sockets: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms; deliveries ${got.frames}/${expected} (lost ${r.lost})`,
      );
    }
    const medianOf = (k: "p50" | "p99") => median(rounds.map((r) => (r.latencyMs as Record<string, number>)[k]!));
    result.latency = { postsPerSecond: RATE, rounds, medianP50Ms: medianOf("p50"), medianP99Ms: medianOf("p99") };
    console.log(`latency: median over ${ROUNDS} rounds p50 ${medianOf("p50")} ms, p99 ${medianOf("p99")} ms`);

    // 3. One channel, every socket: BURST posts as fast as the API takes them.
    const burst = async (channelOf: (i: number) => bigint, count: number, perPost: number) => {
      await reset();
      const t = performance.now();
      const answers: Array<Promise<unknown>> = [];
      for (let i = 0; i < count; i++) answers.push(stream.post(channelOf(i), `burst ${i}`));
      await Promise.all(answers);
      const want = count * perPost;
      let d = await deliveries();
      while (d.frames < want && performance.now() - t < 60_000) {
        await sleep(20);
        d = await deliveries();
      }
      const seconds = (performance.now() - t) / 1000;
      return { posts: count, subscribersPerPost: perPost, deliveries: d.frames, seconds: Math.round(seconds * 1000) / 1000, deliveriesPerSecond: Math.round(d.frames / seconds) };
    };
    const one = await burst(() => everyone, BURST, open);
    result.fanoutOneChannel = one;
    console.log(`fan-out, one channel x ${open} sockets: ${one.deliveries} deliveries in ${one.seconds} s = ${one.deliveriesPerSecond}/s`);
    const many = await burst((i) => groups[i % groups.length]!, BURST * 50, GROUP_SIZE * SOCKETS_PER_USER);
    result.fanoutManyChannels = many;
    console.log(`fan-out, ${groups.length} channels x ${GROUP_SIZE * SOCKETS_PER_USER} sockets: ${many.deliveries} deliveries in ${many.seconds} s = ${many.deliveriesPerSecond}/s`);

    await stream.end();
    probe.close();
  } finally {
    h2.close();
    for (const w of workers) w.send({ type: "close" });
    for (const p of new Set([edge, server])) p.child.kill("SIGTERM");
    await Promise.all([edge.exited, server.exited]);
    await nats?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  mkdirSync("bench/results", { recursive: true });
  const file = path.join("bench/results", `gateway${SPLIT ? "-split" : ""}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});


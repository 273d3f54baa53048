/**
 * API benchmark of the single-node mode (embedded SQLite store).
 *
 * Measures, against the real program started as a child process:
 *   1. durable posts/s with many concurrent clients (Connect binary over h2c),
 *      with post latency p50/p99; then the same over StreamPostMessages
 *      (gRPC streams, 16 posts in flight per stream);
 *   2. ListMessages latency p50/p99 over a channel of --history messages,
 *      at random depths, one request at a time and --concurrency at a time;
 * and in-process, on the same disk:
 *   3. the message service alone (validation, authorization, ids, durable
 *      store, publish) without the network, which isolates transport cost;
 *   4. the store alone: appendMessage with group commit (ours) against one
 *      transaction per message (what a naive SQLite store does), as a ratio.
 *
 * Run: npm run bench:api -- [--seconds 10] [--concurrency 64] [--history 100000]
 * Writes bench/results/api-<timestamp>.json.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createIdGenerator } from "../core/ids.js";
import { loadConfig } from "../core/config.js";
import { createLogger } from "../core/logger.js";
import { ChannelService, CreateChannelRequestSchema } from "../gen/chat/v1/channel_pb.js";
import {
  ListMessagesRequestSchema,
  PostMessageRequestSchema,
  PostMessageResponseSchema,
} from "../gen/chat/v1/message_pb.js";
import { CreateUserRequestSchema, UserService } from "../gen/chat/v1/user_pb.js";
import { startApi } from "../app/api-node.js";
import { startChatProcess } from "../infra/harness/chat-process.js";
import { createSqliteStore } from "../store/sqlite/sqlite-store.js";
import { machineInfo } from "./support/machine.js";
import { openPostStream } from "./support/post-stream.js";
import { summarize, type LatencySummary } from "./support/stats.js";
import { createH2Caller } from "./support/h2-caller.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "64" },
    history: { type: "string", default: "100000" },
    reads: { type: "string", default: "5000" },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const HISTORY = Number(args.history);
const READS = Number(args.reads);
const ADMIN = "bench-admin-token-0123456789";

async function main() {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-bench-"));
  const server = await startChatProcess({
    CHAT_DATA_DIR: dataDir,
    CHAT_ADMIN_TOKEN: ADMIN,
    CHAT_LOG_LEVEL: "info",
    // CHAT_BENCH_ACCESS_LOG=false measures the server without its access log (one line per RPC).
    CHAT_ACCESS_LOG: process.env.CHAT_BENCH_ACCESS_LOG ?? "true",
  });
  const result: Record<string, unknown> = { machine: machineInfo(), params: { SECONDS, CONCURRENCY, HISTORY, READS } };
  try {
    const auth = (token: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
    const connect = (token: string) =>
      createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true, interceptors: [auth(token)] });
    const admin = createClient(UserService, connect(ADMIN));

    // Setup: users with tokens, channels they are members of.
    const users: Array<{ id: bigint; token: string }> = [];
    for (let i = 0; i < 16; i++) {
      const { user } = await admin.createUser({ name: `bench ${i}`, email: `bench${i}@example.com` });
      const { token } = await admin.issueToken({ userId: user!.id });
      users.push({ id: user!.id, token });
    }
    const channels: bigint[] = [];
    for (let i = 0; i < 16; i++) {
      const owner = createClient(ChannelService, connect(users[0]!.token));
      const { channel } = await owner.createChannel({ name: `load-${i}` });
      for (const u of users.slice(1)) await createClient(ChannelService, connect(u.token)).joinChannel({ channelId: channel!.id });
      channels.push(channel!.id);
    }
    const history = (await createClient(ChannelService, connect(users[0]!.token)).createChannel({ name: "history" })).channel!.id;
    for (const u of users.slice(1)) await createClient(ChannelService, connect(u.token)).joinChannel({ channelId: history });

    const h2 = createH2Caller(server.url, 4);
    const post = async (userIndex: number, channelId: bigint, text: string, clientMsgId: string) => {
      const u = users[userIndex % users.length]!;
      const body = toBinary(PostMessageRequestSchema, create(PostMessageRequestSchema, { channelId, text, clientMsgId }));
      const res = await h2.call("/chat.v1.MessageService/PostMessage", u.token, body);
      if (res.status !== 200) throw new Error(`post failed: ${res.status} ${res.body.toString()}`);
      return fromBinary(PostMessageResponseSchema, res.body).message!.id;
    };

    // 1. Posts/s: CONCURRENCY clients, each posting back to back for SECONDS.
    const warmupEnd = Date.now() + 2000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, c) => {
        for (let i = 0; Date.now() < warmupEnd; i++) await post(c, channels[c % channels.length]!, `warmup ${c}/${i}`, `w${c}-${i}`);
      }),
    );
    const postLatencies: number[] = [];
    const started = performance.now();
    const end = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, c) => {
        for (let i = 0; Date.now() < end; i++) {
          const t0 = performance.now();
          await post(c, channels[c % channels.length]!, `message ${i} from client ${c}: the quick brown fox`, `c${c}-${i}`);
          postLatencies.push(performance.now() - t0);
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const posts = { postsPerSecond: Math.round(postLatencies.length / elapsed), latencyMs: summarize(postLatencies) };
    result.posts = posts;
    console.log(`posts: ${posts.postsPerSecond}/s durable, latency ${fmt(posts.latencyMs)} (concurrency ${CONCURRENCY})`);

    // 1b. The same posts over StreamPostMessages: CONCURRENCY/4 gRPC streams,
    //     each with up to 16 posts in flight, answered in order.
    //     With fewer, longer-lived streams each post costs the server far less.
    const streams = Math.max(1, Math.floor(CONCURRENCY / 4));
    const streamed = await streamedPosts(server.url, users, channels, streams, 16);
    result.streamedPosts = streamed;
    console.log(`streamed posts: ${streamed.postsPerSecond}/s durable over ${streams} gRPC streams (16 in flight each), ack latency ${fmt(streamed.latencyMs)}`);

    // 2. History: fill one channel with HISTORY messages through the API, then read at random depths.
    const fillStart = performance.now();
    const ids: bigint[] = [];
    let filled = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, c) => {
        while (filled < HISTORY) {
          const n = filled++;
          ids.push(await post(c, history, `history message ${n}`, `h${n}`));
        }
      }),
    );
    const fillRate = Math.round(HISTORY / ((performance.now() - fillStart) / 1000));
    console.log(`history: ${HISTORY} messages posted at ${fillRate}/s`);
    ids.sort((a, b) => (a < b ? -1 : 1));
    const reader = users[0]!;
    const list = async (before: bigint) => {
      const body = toBinary(ListMessagesRequestSchema, create(ListMessagesRequestSchema, { channelId: history, before, limit: 50 }));
      const t0 = performance.now();
      const res = await h2.call("/chat.v1.MessageService/ListMessages", reader.token, body);
      const ms = performance.now() - t0;
      if (res.status !== 200) throw new Error(`list failed: ${res.status}`);
      return ms;
    };
    const randomCursor = () => ids[Math.floor(Math.random() * ids.length)]!;
    for (let i = 0; i < 500; i++) await list(randomCursor()); // warm-up
    const serial: number[] = [];
    for (let i = 0; i < READS; i++) serial.push(await list(randomCursor()));
    const concurrent: number[] = [];
    const readStart = performance.now();
    let issued = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (issued++ < READS) concurrent.push(await list(randomCursor()));
      }),
    );
    const readsPerSecond = Math.round(concurrent.length / ((performance.now() - readStart) / 1000));
    result.history = {
      messages: HISTORY,
      fillPostsPerSecond: fillRate,
      listOneAtATimeMs: summarize(serial),
      list16AtATimeMs: summarize(concurrent),
      list16ReadsPerSecond: readsPerSecond,
    };
    console.log(`ListMessages (limit 50, random depth, 1 at a time): ${fmt(summarize(serial))}`);
    console.log(`ListMessages (16 at a time): ${fmt(summarize(concurrent))}, ${readsPerSecond} reads/s`);
    h2.close();
  } finally {
    server.child.kill("SIGTERM");
    await server.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }

  // 3. The message service in-process: validation, authorization, ids, store and publish, no network.
  result.service = await serviceLevel();

  // 4. The store alone: group commit against one transaction per message, same disk.
  result.store = await storeComparison();

  mkdirSync("bench/results", { recursive: true });
  const file = path.join("bench/results", `api-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file}`);
}

/** StreamPostMessages load: `streams` streams, each with up to `window` posts in flight. */
async function streamedPosts(
  url: string,
  users: Array<{ id: bigint; token: string }>,
  channels: bigint[],
  streams: number,
  window: number,
) {
  const latencies: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  const sessions = Array.from({ length: 4 }, () => http2.connect(url));
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async (_, s) => {
      const stream = openPostStream(sessions[s % sessions.length]!, users[s % users.length]!.token);
      const channelId = channels[s % channels.length]!;
      await Promise.all(
        Array.from({ length: window }, async (_, w) => {
          for (let i = 0; Date.now() < end; i++) {
            const sent = performance.now();
            const answer = await stream.post(channelId, `streamed ${i} from ${s}/${w}`, `st${s}-${w}-${i}`);
            if (answer.error) throw new Error(`streamed post rejected: ${answer.error.message}`);
            latencies.push(performance.now() - sent);
          }
        }),
      );
      await stream.end();
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  for (const session of sessions) session.close();
  return { streams, window, postsPerSecond: Math.round(latencies.length / elapsed), latencyMs: summarize(latencies) };
}

async function serviceLevel() {
  const dir = mkdtempSync(path.join(tmpdir(), "chat-bench-svc-"));
  const config = loadConfig({ env: { CHAT_DATA_DIR: dir, CHAT_API_PORT: "0", CHAT_ADMIN_TOKEN: ADMIN }, argv: [] });
  const api = await startApi({ config, logger: createLogger("warn"), defaultMetrics: false });
  try {
    const { user } = await api.handlers.users.createUser({ kind: "admin" }, create(CreateUserRequestSchema, { name: "svc", email: "svc@example.com" }));
    const me = { kind: "user" as const, userId: user!.id };
    const { channel } = await api.handlers.channels.createChannel(me, create(CreateChannelRequestSchema, { name: "svc" }));
    const latencies: number[] = [];
    const end = Date.now() + SECONDS * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, c) => {
        for (let i = 0; Date.now() < end; i++) {
          const s = performance.now();
          await api.handlers.messages.postMessage(
            me,
            create(PostMessageRequestSchema, { channelId: channel!.id, text: `message ${i} from client ${c}`, clientMsgId: `s${c}-${i}` }),
          );
          latencies.push(performance.now() - s);
        }
      }),
    );
    const out = {
      postsPerSecond: Math.round(latencies.length / ((performance.now() - t0) / 1000)),
      latencyMs: summarize(latencies),
    };
    console.log(`message service in-process (no network): ${out.postsPerSecond} durable posts/s, ${fmt(out.latencyMs)}`);
    return out;
  } finally {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function storeComparison() {
  const dir = mkdtempSync(path.join(tmpdir(), "chat-bench-store-"));
  const gen = createIdGenerator({ nodeId: 1 });
  const n = 20_000;
  try {
    const store = createSqliteStore({ file: path.join(dir, "group.sqlite") });
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) {
          next++;
          await store.appendMessage({ id: gen.next(), channelId: 1n, senderId: 1n, text: "group commit", clientMsgId: "" });
        }
      }),
    );
    const grouped = n / ((performance.now() - t0) / 1000);

    // History reads from the store alone, over a channel of HISTORY messages.
    const historyIds: bigint[] = [];
    for (let i = 0; i < HISTORY; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, HISTORY - i) }, (_, j) => {
        const id = gen.next();
        historyIds.push(id);
        return store.appendMessage({ id, channelId: 2n, senderId: 1n, text: `history message ${i + j}`, clientMsgId: "" });
      });
      await Promise.all(batch);
    }
    const reads: number[] = [];
    for (let i = 0; i < READS; i++) {
      const before = historyIds[Math.floor(Math.random() * historyIds.length)]!;
      const s = performance.now();
      await store.listMessages(2n, { before, limit: 51, order: "newest-first" });
      reads.push(performance.now() - s);
    }
    const listMs = summarize(reads);
    console.log(`store listMessages over ${HISTORY} messages (limit 50, random depth): ${fmt(listMs)}`);
    await store.close();

    // Baseline: the same table and durability, one transaction (one fsync) per message.
    const db = new Database(path.join(dir, "single.sqlite"));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE messages (channel_id INTEGER, id INTEGER, sender_id INTEGER, text TEXT, client_msg_id TEXT, PRIMARY KEY (channel_id, id)) WITHOUT ROWID");
    const insert = db.prepare("INSERT INTO messages VALUES (?, ?, ?, ?, NULL)");
    const m = 3000;
    const t1 = performance.now();
    for (let i = 0; i < m; i++) insert.run(1n, gen.next(), 1n, "one fsync each");
    const single = m / ((performance.now() - t1) / 1000);
    db.close();
    const out = {
      listMessagesMs: listMs,
      groupCommitPerSecond: Math.round(grouped),
      oneTransactionPerMessagePerSecond: Math.round(single),
      ratio: Math.round((grouped / single) * 10) / 10,
    };
    console.log(`store: group commit ${out.groupCommitPerSecond}/s vs one transaction per message ${out.oneTransactionPerMessagePerSecond}/s (x${out.ratio})`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(s: LatencySummary): string {
  return `p50 ${s.p50} ms, p99 ${s.p99} ms (n=${s.count})`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

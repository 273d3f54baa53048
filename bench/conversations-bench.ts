/**
 * Conversations benchmark: what messages that change (reactions, threads,
 * edits, pins, the change log) cost, per store, against the real program.
 *
 *   embedded   one process (role all), CHAT_STORE=sqlite, CHAT_BUS=local, a
 *              temporary data folder of its own;
 *   cassandra  a real single-node Cassandra started here (infra/harness), one
 *              API process (role api, CHAT_STORE=cassandra, CHAT_BUS=local,
 *              a keyspace of its own); --cassandra host:port uses one that is
 *              already running (the keyspace is dropped at the end).
 *
 * Per store, in this order:
 *   1. seeding, timed: --history root messages in one PERSISTED channel over
 *      StreamPostMessages (16 streams of 16 posters' tokens, 16 posts in flight
 *      each); then on every 10th message (by id) one thread reply (a PostMessage
 *      with thread_root_id, so the history stays --history roots) and 1 to 3
 *      reactions from different users, --concurrency calls in flight; and, to
 *      read the reply rate against, as many unary posts that are not replies
 *      (same users and concurrency, a channel of their own);
 *   2. ListMessages (limit 50, newest first, `before` = a random message id of
 *      the history), one request at a time, --reads after --read-warmup; every
 *      page is decoded after its timing and checked: the ids expected below the
 *      cursor, no reply among them, each message's reaction counts, users and
 *      Reaction.me for the reader, and thread summaries;
 *   3. EditMessage: --edits edits of history messages by their senders, one at a time;
 *   4. ListChanges: the history channel's whole change log, page by page
 *      (limit 500), one page at a time: changes/s and page latency; checked:
 *      seq 1, 2, 3, ... without gaps, complete, and the count of each kind;
 *   5. one hot message: --reactors users (CreateUser + IssueToken, concurrent)
 *      join a channel and each adds the same emoji to one message, then a second
 *      emoji, --concurrency calls in flight: reactions/s, latency p50/p99; then
 *      the counts are read back (ListMessages as a reactor and as a non-reactor,
 *      ListPins after a pin, re-adds that must change nothing, the channel's
 *      change log) and must be exactly --reactors per emoji.
 *
 * Run: npm run bench:conversations -- [--store embedded|cassandra|both] [--history 100000] [--reads 2000]
 *        [--read-warmup 300] [--reactors 1000] [--concurrency 64] [--edits 200] [--list-changes-limit 500]
 *        [--cassandra-heap 1024] [--cassandra host:port] [--timeout-minutes 40] [--quick]
 * Every flag also reads from CHAT_BENCH_<FLAG> (e.g. CHAT_BENCH_HISTORY=20000);
 * CHAT_BENCH_ACCESS_LOG=false runs the server without its access log.
 * Writes bench/results/conversations-<timestamp>.json. Loopback only; it stops
 * what it started, also on error, timeout and SIGINT. Exits 1 when a store
 * failed or a check found wrong data.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import cassandra from "cassandra-driver";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { EventService } from "../gen/chat/v1/event_service_pb.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import { MessageService, type ListMessagesResponse, type Message } from "../gen/chat/v1/message_pb.js";
import { CASSANDRA_VERSION, startCassandra } from "../infra/harness/cassandra.js";
import { startChatProcess, type ChatProcess } from "../infra/harness/chat-process.js";
import { stopChild } from "../infra/harness/processes.js";
import { createH2Caller, h2session } from "./support/h2-caller.js";
import { cleanupAll, isStopping, onCleanup, runMain, stopOnSignalsAndTimeout, track } from "./support/lifecycle.js";
import { machineInfo } from "./support/machine.js";
import { inParallel } from "./support/parallel.js";
import { benchParams, envOf } from "./support/params.js";
import { openPostStream } from "./support/post-stream.js";
import { cpuMeter } from "./support/proc.js";
import { setupClients, type User } from "./support/setup-clients.js";
import { grownSamples, scrape } from "./support/scrape-workers.js";
import { summarize, type LatencySummary } from "./support/stats.js";

// ---------------------------------------------------------------------------
// Parameters: CLI flag, else CHAT_BENCH_<FLAG>, else the --quick preset, else the default (support/params.ts).

const NUMERIC = {
  history: { full: 100_000, quick: 10_000, what: "root messages in the history channel" },
  reads: { full: 2000, quick: 300, what: "measured ListMessages reads" },
  "read-warmup": { full: 300, quick: 100, what: "ListMessages reads before the measured ones" },
  reactors: { full: 1000, quick: 200, what: "users reacting to the hot message" },
  concurrency: { full: 64, quick: 64, what: "calls in flight while seeding and reacting" },
  edits: { full: 200, quick: 50, what: "EditMessage calls, one at a time" },
  "list-changes-limit": { full: 500, quick: 500, what: "ListChanges page size" },
  "cassandra-heap": { full: 1024, quick: 1024, what: "Cassandra heap (MiB)" },
  "timeout-minutes": { full: 40, quick: 15, what: "hard limit on the whole run" },
} as const;

const { cli, quick: QUICK, P } = benchParams(NUMERIC, { store: { type: "string" }, cassandra: { type: "string" } }, true);
type StoreKind = "embedded" | "cassandra";
const STORE_ARG = ((cli.store as string | undefined) ?? envOf("store") ?? "both").trim();
if (!["embedded", "cassandra", "both"].includes(STORE_ARG)) throw new Error(`--store: expected embedded, cassandra or both, got ${STORE_ARG}`);
const STORES: StoreKind[] = STORE_ARG === "both" ? ["embedded", "cassandra"] : [STORE_ARG as StoreKind];
/** An already running Cassandra (host:port) to use instead of starting one. */
const EXISTING_CASSANDRA = (cli.cassandra as string | undefined) ?? envOf("cassandra");
if (P.history < 1) throw new Error("--history: expected at least 1");

const ADMIN = "bench-admin-token-0123456789";
const JWT_SECRET = "bench-jwt-secret-0123456789-0123456789";
const PAGE = 50;
/** History seeding over StreamPostMessages: streams, posts in flight on each. */
const STREAMS = 16;
const WINDOW = 16;
const POSTERS = 16;
/** Every DECORATE_EVERY-th history message (by id) gets a thread reply and reactions. */
const DECORATE_EVERY = 10;
/** The emoji of the hot message, in the order they are added. */
const HOT_EMOJI = ["👍", "🎉"] as const;
/** Reactors that add the first emoji again, which must change nothing. */
const RE_ADDS = 50;

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const n = (x: number) => x.toLocaleString("en-US");
const fmt = (s: LatencySummary) => `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms (n=${s.count})`;
const rate = (count: number, seconds: number) => (seconds > 0 ? Math.round(count / seconds) : 0);
const round2 = (x: number) => Math.round(x * 100) / 100;

// ---------------------------------------------------------------------------
// Progress lines during long phases (seeding on Cassandra takes minutes).

function progress(label: string, total: number) {
  let done = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    const s = (performance.now() - t0) / 1000;
    log(`  ${label}: ${n(done)}/${n(total)} (${n(rate(done, s))}/s)`);
  }, 5000);
  timer.unref();
  return {
    tick: (k = 1) => void (done += k),
    /** Stops the progress lines; returns the phase's seconds. */
    end: () => {
      clearInterval(timer);
      return (performance.now() - t0) / 1000;
    },
  };
}

// ---------------------------------------------------------------------------
// Deployments.

interface Deployment {
  store: StoreKind;
  url: string;
  /** Server-side processes, for CPU accounting. */
  pids: Record<string, number | undefined>;
  process: ChatProcess;
  description: Record<string, unknown>;
  stop(): Promise<void>;
}

const baseEnv = () => ({
  CHAT_ADMIN_TOKEN: ADMIN,
  CHAT_JWT_SECRET: JWT_SECRET,
  CHAT_BUS: "local",
  CHAT_LOG_LEVEL: "info",
  // CHAT_BENCH_ACCESS_LOG=false measures the server without its access log (one line per RPC), as in bench:api.
  CHAT_ACCESS_LOG: process.env.CHAT_BENCH_ACCESS_LOG ?? "true",
});

function redact(env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  for (const k of ["CHAT_ADMIN_TOKEN", "CHAT_JWT_SECRET"]) if (k in out) out[k] = "(bench constant)";
  return out;
}

async function startProcess(name: string, env: Record<string, string>, args: string[]): Promise<ChatProcess> {
  const p = await startChatProcess(env, args);
  track(p.child);
  onCleanup(name, () => stopChild(p.child, 15_000));
  return p;
}

async function startEmbedded(): Promise<Deployment> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-conversations-bench-"));
  const removeDir = onCleanup("embedded data folder", async () => rmSync(dataDir, { recursive: true, force: true }));
  const env = { ...baseEnv(), CHAT_DATA_DIR: dataDir, CHAT_STORE: "sqlite" };
  log("starting the embedded program (role all, CHAT_STORE=sqlite, CHAT_BUS=local)...");
  const node = await startProcess("embedded chat process", env, ["--role", "all"]);
  return {
    store: "embedded",
    url: node.url,
    pids: { node: node.child.pid },
    process: node,
    description: { processes: [{ role: "all", env: redact(env) }] },
    async stop() {
      await stopChild(node.child, 15_000);
      await removeDir();
    },
  };
}

interface CassandraNode {
  contactPoint: string;
  pid: number | undefined;
  version?: string;
  stop(): Promise<void>;
}

async function cassandraClient<T>(contactPoint: string, fn: (client: cassandra.Client) => Promise<T>): Promise<T> {
  const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1" });
  try {
    return await fn(client);
  } finally {
    await client.shutdown();
  }
}

async function startCassandraNode(): Promise<CassandraNode> {
  let node: CassandraNode;
  if (EXISTING_CASSANDRA) {
    node = { contactPoint: EXISTING_CASSANDRA, pid: undefined, stop: async () => {} };
  } else {
    log(`starting Cassandra ${CASSANDRA_VERSION} (single node, heap ${P["cassandra-heap"]} MiB)...`);
    const t0 = Date.now();
    const c = await startCassandra({ heapMb: P["cassandra-heap"], log });
    track(c.child);
    node = { contactPoint: c.contactPoint, pid: c.child.pid, stop: onCleanup("Cassandra", () => c.stop()) };
    log(`Cassandra ready on ${c.contactPoint} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  try {
    node.version = await cassandraClient(node.contactPoint, async (c) =>
      String((await c.execute("SELECT release_version FROM system.local")).first().get("release_version")),
    );
  } catch {
    // The version is for the record only.
  }
  return node;
}

async function startOnCassandra(node: CassandraNode): Promise<Deployment> {
  const dir = mkdtempSync(path.join(tmpdir(), "chat-conversations-bench-cassandra-"));
  const removeDir = onCleanup("cassandra-mode data folder", async () => rmSync(dir, { recursive: true, force: true }));
  const keyspace = `bench_conv_${process.pid}x${Date.now() % 1_000_000}`;
  // A Cassandra of our own goes away with its data; on one we were given, the keyspace is dropped.
  const dropKeyspace = EXISTING_CASSANDRA
    ? onCleanup("bench keyspace", () => cassandraClient(node.contactPoint, async (c) => void (await c.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`))))
    : async () => {};
  const env = {
    ...baseEnv(),
    CHAT_NODE_ID: "1",
    CHAT_STORE: "cassandra",
    CHAT_CASSANDRA_CONTACT_POINTS: node.contactPoint,
    CHAT_CASSANDRA_KEYSPACE: keyspace,
    CHAT_DATA_DIR: path.join(dir, "api"),
  };
  log(`starting the API process (role api, CHAT_STORE=cassandra, CHAT_BUS=local, keyspace ${keyspace})...`);
  const api = await startProcess("API process", env, ["--role", "api"]);
  return {
    store: "cassandra",
    url: api.url,
    pids: { api: api.child.pid, cassandra: node.pid },
    process: api,
    description: { keyspace, cassandraVersion: node.version, processes: [{ role: "api", env: redact(env) }] },
    async stop() {
      await stopChild(api.child, 15_000);
      await dropKeyspace();
      await removeDir();
    },
  };
}

// ---------------------------------------------------------------------------
// Clients: Connect (binary, HTTP/2) for users and channels; for everything
// measured, the lean Connect-binary caller over raw h2c (support/h2-caller.ts).

interface Answer<T> {
  ms: number;
  value?: T;
  error?: string;
}

/** A unary method of a generated service (MessageService.method.addReaction, ...). */
interface UnaryMethod<I extends DescMessage, O extends DescMessage> {
  name: string;
  parent: { typeName: string };
  input: I;
  output: O;
}

function clientsFor(url: string) {
  const h2 = createH2Caller(url, 4);
  return {
    ...setupClients(url, ADMIN),
    /** One unary call; ms is the round trip, without encoding and decoding. Never throws. */
    async call<I extends DescMessage, O extends DescMessage>(method: UnaryMethod<I, O>, token: string, init: MessageInitShape<I>): Promise<Answer<MessageShape<O>>> {
      const body = toBinary(method.input, create(method.input, init));
      try {
        const res = await h2.call(`/${method.parent.typeName}/${method.name}`, token, body);
        if (res.status !== 200) return { ms: res.ms, error: `${method.name}: HTTP ${res.status} ${res.body.toString().slice(0, 300)}` };
        return { ms: res.ms, value: fromBinary(method.output, res.body) };
      } catch (err) {
        return { ms: NaN, error: `${method.name}: ${err instanceof Error ? err.message : String(err)}` };
      }
    },
    close: () => h2.close(),
  };
}
type Clients = ReturnType<typeof clientsFor>;

/** Call errors of one phase: how many, and the first few. */
function errorLog() {
  const first: string[] = [];
  let count = 0;
  return {
    add(e: string) {
      count++;
      if (first.length < 5) first.push(e);
    },
    get count() {
      return count;
    },
    toJSON: () => ({ count, first }),
  };
}

/** What a check found: OK, or its first problems. */
function checker() {
  const problems: string[] = [];
  let count = 0;
  return {
    fail(p: string) {
      count++;
      if (problems.length < 10) problems.push(p);
    },
    get ok() {
      return count === 0;
    },
    get count() {
      return count;
    },
    toJSON: () => ({ ok: count === 0, problems: count, first: problems }),
    say: () => (count === 0 ? "OK" : `MISMATCH (${count}): ${problems.slice(0, 3).join("; ")}`),
  };
}
type Checker = ReturnType<typeof checker>;

// ---------------------------------------------------------------------------
// 1. Seeding: the history, then a thread reply and reactions on every 10th message.

/** What every decorated history message must show. */
interface Decoration {
  replierId: bigint;
  /** Reactions in the order they were added (one message's reactions are added one after another). */
  reactions: Array<{ userIndex: number; emoji: string }>;
}

interface History {
  channel: bigint;
  /** The history's ids, ascending. */
  ids: bigint[];
  senders: Map<bigint, bigint>;
  decorations: Map<bigint, Decoration>;
  replies: number;
  reactions: number;
}

/** Reactions of the d-th decorated message: 1 to 3 users (posters), the first two 👍, the third 🎉. */
function reactionPlan(d: number): Array<{ userIndex: number; emoji: string }> {
  const k = 1 + (d % 3);
  return Array.from({ length: k }, (_, j) => ({ userIndex: (d + j) % POSTERS, emoji: j < 2 ? "👍" : "🎉" }));
}

async function seed(dep: Deployment, clients: Clients, posters: User[], channel: bigint, sideChannel: bigint) {
  const out: Record<string, unknown> = {};
  // History roots over StreamPostMessages.
  const ids: bigint[] = [];
  const senders = new Map<bigint, bigint>();
  const errors = errorLog();
  const bar = progress("history posts", P.history);
  const meter = cpuMeter(() => dep.pids);
  const sessions = Array.from({ length: 4 }, () => h2session(dep.url));
  const latencies: number[] = [];
  let issued = 0;
  try {
    await Promise.all(
      Array.from({ length: STREAMS }, async (_, s) => {
        const stream = openPostStream(sessions[s % sessions.length]!, posters[s % POSTERS]!.token);
        await Promise.all(
          Array.from({ length: WINDOW }, async (_, w) => {
            while (issued < P.history) {
              const i = issued++;
              const t0 = performance.now();
              const answer = await stream.post(channel, `history message ${i} from ${s}/${w}: the quick brown fox jumps over the lazy dog`);
              if (answer.error || !answer.message) {
                errors.add(answer.error?.message ?? "no message in the answer");
                continue;
              }
              latencies.push(performance.now() - t0);
              ids.push(answer.message.id);
              senders.set(answer.message.id, answer.message.senderId);
              bar.tick();
            }
          }),
        );
        await stream.end();
      }),
    );
  } finally {
    for (const s of sessions) s.close();
  }
  const historySeconds = bar.end();
  out.history = {
    posts: ids.length,
    errors,
    seconds: round2(historySeconds),
    postsPerSecond: rate(ids.length, historySeconds),
    ackLatencyMs: summarize(latencies),
    cpuPercent: meter(),
  };
  log(`seed: ${n(ids.length)} history posts at ${n(rate(ids.length, historySeconds))}/s over ${STREAMS} streams (${errors.count} errors)`);
  if (errors.count > 0) log(`  first errors: ${JSON.stringify(errors.toJSON().first)}`);
  ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  // Every 10th message by id gets a thread reply. First, for comparison, as
  // many unary posts that are not replies, by the same users, with the same
  // concurrency, into a channel of their own.
  const roots = ids.filter((_, i) => i % DECORATE_EVERY === 0);
  const plainErrors = errorLog();
  const plainLatencies: number[] = [];
  const plainBar = progress("unary posts (baseline)", roots.length);
  await inParallel(roots.length, P.concurrency, async (d) => {
    const a = await clients.call(MessageService.method.postMessage, posters[(d + 5) % POSTERS]!.token, { channelId: sideChannel, text: `plain post ${d}` });
    if (a.error || !a.value?.message) return plainErrors.add(a.error ?? "no message in the answer");
    plainLatencies.push(a.ms);
    plainBar.tick();
  });
  const plainSeconds = plainBar.end();
  out.unaryPostsBaseline = {
    posts: plainLatencies.length,
    errors: plainErrors,
    seconds: round2(plainSeconds),
    perSecond: rate(plainLatencies.length, plainSeconds),
    latencyMs: summarize(plainLatencies),
  };
  log(
    `seed: baseline, ${n(plainLatencies.length)} unary posts (not replies) at ${n(rate(plainLatencies.length, plainSeconds))}/s, ` +
      `${fmt(summarize(plainLatencies))} (${plainErrors.count} errors)`,
  );

  // The replies, concurrent over messages.
  const decorations = new Map<bigint, Decoration>();
  const replyErrors = errorLog();
  const replyLatencies: number[] = [];
  const replyBar = progress("thread replies", roots.length);
  const replyMeter = cpuMeter(() => dep.pids);
  await inParallel(roots.length, P.concurrency, async (d) => {
    const root = roots[d]!;
    const replier = posters[(d + 5) % POSTERS]!;
    const a = await clients.call(MessageService.method.postMessage, replier.token, { channelId: channel, threadRootId: root, text: `reply ${d} in the thread of ${root}` });
    if (a.error || !a.value?.message) return replyErrors.add(a.error ?? "no message in the answer");
    replyLatencies.push(a.ms);
    decorations.set(root, { replierId: replier.id, reactions: [] });
    replyBar.tick();
  });
  const replySeconds = replyBar.end();
  const replyCount = decorations.size;
  out.threadReplies = {
    replies: decorations.size,
    errors: replyErrors,
    seconds: round2(replySeconds),
    perSecond: rate(decorations.size, replySeconds),
    latencyMs: summarize(replyLatencies),
    cpuPercent: replyMeter(),
  };
  log(`seed: ${n(decorations.size)} thread replies at ${n(rate(decorations.size, replySeconds))}/s, ${fmt(summarize(replyLatencies))} (${replyErrors.count} errors)`);

  // Then 1-3 reactions on each of those messages: one message's in turn (so
  // their order, which Reaction.user_ids shows, is known), messages concurrently.
  const plannedReactions = roots.reduce((sum, _, d) => sum + reactionPlan(d).length, 0);
  const reactionErrors = errorLog();
  const reactionLatencies: number[] = [];
  const reactionBar = progress("history reactions", plannedReactions);
  const reactionMeter = cpuMeter(() => dep.pids);
  await inParallel(roots.length, P.concurrency, async (d) => {
    const root = roots[d]!;
    const decoration = decorations.get(root) ?? { replierId: 0n, reactions: [] };
    decorations.set(root, decoration);
    for (const r of reactionPlan(d)) {
      const a = await clients.call(MessageService.method.addReaction, posters[r.userIndex]!.token, { channelId: channel, messageId: root, emoji: r.emoji });
      if (a.error) {
        reactionErrors.add(a.error);
        continue;
      }
      reactionLatencies.push(a.ms);
      decoration.reactions.push(r);
      reactionBar.tick();
    }
  });
  const reactionSeconds = reactionBar.end();
  out.reactions = {
    onMessages: roots.length,
    reactions: reactionLatencies.length,
    errors: reactionErrors,
    seconds: round2(reactionSeconds),
    perSecond: rate(reactionLatencies.length, reactionSeconds),
    latencyMs: summarize(reactionLatencies),
    cpuPercent: reactionMeter(),
  };
  log(
    `seed: ${n(reactionLatencies.length)} reactions on ${n(roots.length)} messages at ${n(rate(reactionLatencies.length, reactionSeconds))}/s, ` +
      `${fmt(summarize(reactionLatencies))} (${reactionErrors.count} errors)`,
  );
  for (const e of [plainErrors, replyErrors, reactionErrors]) if (e.count > 0) log(`  first errors: ${JSON.stringify(e.toJSON().first)}`);
  const history: History = { channel, ids, senders, decorations, replies: replyCount, reactions: reactionLatencies.length };
  return { seeded: out, history };
}

// ---------------------------------------------------------------------------
// 2. ListMessages over the history, one at a time, every page checked.

/** First index of ids (ascending) holding a value >= id. */
function lowerBound(ids: bigint[], id: bigint): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Checks one page against what was seeded; returns what is wrong, or undefined. */
function checkPage(h: History, readerIndex: number, posters: User[], before: bigint, page: ListMessagesResponse): string | undefined {
  const at = lowerBound(h.ids, before);
  const expected = h.ids.slice(Math.max(0, at - PAGE), at).reverse();
  if (page.messages.length !== expected.length) return `before ${before}: ${page.messages.length} messages, expected ${expected.length}`;
  if (page.hasMore !== at - PAGE > 0) return `before ${before}: has_more ${page.hasMore}, expected ${at - PAGE > 0}`;
  for (let i = 0; i < expected.length; i++) {
    const m = page.messages[i]!;
    if (m.id !== expected[i]) return `before ${before}: message ${i} is ${m.id}, expected ${expected[i]}`;
    const problem = checkMessage(h, readerIndex, posters, m);
    if (problem) return `message ${m.id}: ${problem}`;
  }
  return undefined;
}

function checkMessage(h: History, readerIndex: number, posters: User[], m: Message): string | undefined {
  if (m.threadRootId !== 0n) return `a reply (thread_root_id ${m.threadRootId}) in the channel's history`;
  const d = h.decorations.get(m.id);
  // Reactions: one entry per emoji in the order first used, exact counts, the first 3 users, me for the reader.
  const want = new Map<string, number[]>();
  for (const r of d?.reactions ?? []) want.set(r.emoji, [...(want.get(r.emoji) ?? []), r.userIndex]);
  const wantEmoji = [...want.keys()];
  const gotEmoji = m.reactions.map((r) => r.emoji);
  if (gotEmoji.join(" ") !== wantEmoji.join(" ")) return `reactions [${gotEmoji.join(" ")}], expected [${wantEmoji.join(" ")}]`;
  for (const r of m.reactions) {
    const users = want.get(r.emoji)!;
    if (r.count !== users.length) return `${r.emoji} count ${r.count}, expected ${users.length}`;
    const wantIds = users.slice(0, 3).map((u) => posters[u]!.id);
    if (r.userIds.join(",") !== wantIds.join(",")) return `${r.emoji} user_ids [${r.userIds.join(",")}], expected [${wantIds.join(",")}]`;
    if (r.me !== users.includes(readerIndex)) return `${r.emoji} me ${r.me}, expected ${!r.me}`;
  }
  // Thread summaries: exactly the one reply.
  const wantReplies = d && d.replierId !== 0n ? 1 : 0;
  const gotReplies = m.thread?.replyCount ?? 0;
  if (gotReplies !== wantReplies) return `thread reply_count ${gotReplies}, expected ${wantReplies}`;
  if (wantReplies && m.thread!.recentReplierIds.join(",") !== String(d!.replierId)) {
    return `thread recent_replier_ids [${m.thread!.recentReplierIds.join(",")}], expected [${d!.replierId}]`;
  }
  return undefined;
}

async function measureReads(dep: Deployment, clients: Clients, posters: User[], h: History) {
  const readerIndex = 1;
  const reader = posters[readerIndex]!;
  const check = checker();
  const errors = errorLog();
  const randomCursor = () => h.ids[Math.floor(Math.random() * h.ids.length)]!;
  const read = async (before: bigint, verify: boolean) => {
    const a = await clients.call(MessageService.method.listMessages, reader.token, { channelId: h.channel, before, limit: PAGE });
    if (a.error || !a.value) {
      errors.add(a.error ?? "no answer");
      return undefined;
    }
    if (verify) {
      const problem = checkPage(h, readerIndex, posters, before, a.value);
      if (problem) check.fail(problem);
    }
    return a.ms;
  };
  for (let i = 0; i < P["read-warmup"]; i++) await read(randomCursor(), false);
  const metricsUrl = new URL("/metrics", dep.url).href;
  const sourcesBefore = await scrape(metricsUrl, ["chat_history_reads_total"]);
  const meter = cpuMeter(() => dep.pids);
  const ms: number[] = [];
  let reactionsSeen = 0;
  let threadsSeen = 0;
  for (let i = 0; i < P.reads; i++) {
    const before = randomCursor();
    const t = await read(before, true);
    if (t !== undefined) ms.push(t);
  }
  const cpuPercent = meter();
  const serverPageSources = grownSamples(sourcesBefore, await scrape(metricsUrl, ["chat_history_reads_total"]));
  // What a page carries, for reading the figure: on average 5 of 50 messages with reactions and a thread summary.
  const sample = await clients.call(MessageService.method.listMessages, reader.token, { channelId: h.channel, before: h.ids[Math.floor(h.ids.length / 2)]!, limit: PAGE });
  for (const m of sample.value?.messages ?? []) {
    if (m.reactions.length > 0) reactionsSeen++;
    if (m.thread) threadsSeen++;
  }
  const out = {
    messages: h.ids.length,
    limit: PAGE,
    warmup: P["read-warmup"],
    latencyMs: summarize(ms),
    errors,
    pagesChecked: ms.length,
    check,
    samplePage: { messages: sample.value?.messages.length ?? 0, withReactions: reactionsSeen, withThreadSummary: threadsSeen },
    serverPageSources,
    cpuPercent,
  };
  log(`ListMessages (${n(h.ids.length)} messages, limit ${PAGE}, random depth, 1 at a time): ${fmt(out.latencyMs)}; pages checked: ${check.say()}`);
  log(`  page sources per the API's metrics: ${JSON.stringify(serverPageSources)}; CPU% ${JSON.stringify(cpuPercent)}`);
  if (errors.count > 0) log(`  ${errors.count} failed reads: ${JSON.stringify(errors.toJSON().first)}`);
  return out;
}

// ---------------------------------------------------------------------------
// 3. EditMessage, one at a time.

async function measureEdits(dep: Deployment, clients: Clients, posters: User[], h: History) {
  const tokens = new Map(posters.map((u) => [u.id, u.token]));
  const picked = new Set<bigint>();
  const count = Math.min(P.edits, h.ids.length);
  while (picked.size < count) picked.add(h.ids[Math.floor(Math.random() * h.ids.length)]!);
  const check = checker();
  const errors = errorLog();
  const ms: number[] = [];
  const meter = cpuMeter(() => dep.pids);
  let i = 0;
  for (const id of picked) {
    const text = `edited ${i++}: the quick brown fox jumps over the lazy dog`;
    const a = await clients.call(MessageService.method.editMessage, tokens.get(h.senders.get(id)!)!, { channelId: h.channel, messageId: id, text });
    if (a.error || !a.value) {
      errors.add(a.error ?? "no answer");
      continue;
    }
    ms.push(a.ms);
    const m = a.value.message;
    if (!m || m.id !== id || m.text !== text || !m.editedAt) {
      const got = m ? `id ${m.id}, text ${JSON.stringify(m.text.slice(0, 20))}, edited_at ${m.editedAt ? "set" : "unset"}` : "no message";
      check.fail(`edit of ${id}: answered ${got}`);
    }
  }
  const out = { edits: ms.length, latencyMs: summarize(ms), errors, check, cpuPercent: meter() };
  log(`EditMessage (1 at a time): ${fmt(out.latencyMs)} (${errors.count} errors); answers: ${check.say()}`);
  if (errors.count > 0) log(`  first errors: ${JSON.stringify(errors.toJSON().first)}`);
  return { out, edited: ms.length };
}

// ---------------------------------------------------------------------------
// 4. ListChanges: a whole change log, page by page.

type EventKind = NonNullable<Event["payload"]["case"]>;

async function pageChanges(clients: Clients, token: string, channelId: bigint, limit: number, check: Checker) {
  const errors = errorLog();
  const ms: number[] = [];
  const kinds: Partial<Record<EventKind, number>> = {};
  const events: Event[] = [];
  let afterSeq = 0n;
  let expectSeq = 1n;
  let pages = 0;
  const t0 = performance.now();
  for (;;) {
    const a = await clients.call(EventService.method.listChanges, token, { channelId, afterSeq, limit });
    if (a.error || !a.value) {
      errors.add(a.error ?? "no answer");
      break;
    }
    ms.push(a.ms);
    pages++;
    const page = a.value;
    if (!page.complete) check.fail(`page after seq ${afterSeq}: complete = false`);
    if (page.events.length > limit) check.fail(`page after seq ${afterSeq}: ${page.events.length} events, limit ${limit}`);
    for (const e of page.events) {
      if (e.seq !== expectSeq) check.fail(`seq ${e.seq} where ${expectSeq} was due`);
      expectSeq = e.seq + 1n;
      const kind = e.payload.case;
      if (kind !== undefined) kinds[kind] = (kinds[kind] ?? 0) + 1;
      events.push(e);
    }
    if (page.events.length > 0 && page.nextSeq !== page.events.at(-1)!.seq) check.fail(`next_seq ${page.nextSeq} after a page ending at seq ${page.events.at(-1)!.seq}`);
    if (!page.hasMore) break;
    if (page.events.length === 0) {
      check.fail(`has_more with an empty page after seq ${afterSeq}`);
      break;
    }
    afterSeq = page.nextSeq;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { changes: events.length, pages, seconds, kinds, events, pageLatencyMs: summarize(ms), errors };
}

function checkKinds(check: Checker, got: Partial<Record<EventKind, number>>, want: Partial<Record<EventKind, number>>) {
  for (const kind of new Set([...Object.keys(got), ...Object.keys(want)]) as Set<EventKind>) {
    if ((got[kind] ?? 0) !== (want[kind] ?? 0)) check.fail(`${got[kind] ?? 0} ${kind} changes, expected ${want[kind] ?? 0}`);
  }
}

async function measureChanges(dep: Deployment, clients: Clients, reader: User, h: History, edited: number) {
  const check = checker();
  const meter = cpuMeter(() => dep.pids);
  const r = await pageChanges(clients, reader.token, h.channel, P["list-changes-limit"], check);
  const cpuPercent = meter();
  // Every post logs "posted", a reply also "thread_updated" for its root; each reaction "reaction_added"; each edit "edited".
  checkKinds(check, r.kinds, {
    messagePosted: h.ids.length + h.replies,
    threadUpdated: h.replies,
    reactionAdded: h.reactions,
    ...(edited > 0 && { messageEdited: edited }),
  });
  const out = {
    changes: r.changes,
    pages: r.pages,
    limit: P["list-changes-limit"],
    seconds: round2(r.seconds),
    changesPerSecond: rate(r.changes, r.seconds),
    pageLatencyMs: r.pageLatencyMs,
    kinds: r.kinds,
    errors: r.errors,
    check,
    cpuPercent,
  };
  log(
    `ListChanges (limit ${out.limit}, 1 page at a time): ${n(out.changes)} changes in ${out.pages} pages, ${out.seconds} s = ${n(out.changesPerSecond)} changes/s; ` +
      `page ${fmt(out.pageLatencyMs)}; log: ${check.say()}`,
  );
  if (r.errors.count > 0) log(`  failed pages: ${JSON.stringify(r.errors.toJSON().first)}`);
  return out;
}

// ---------------------------------------------------------------------------
// 5. One hot message, --reactors users reacting at once.

async function measureHotMessage(dep: Deployment, clients: Clients, owner: User) {
  const out: Record<string, unknown> = {};
  const N = P.reactors;
  // Users, concurrently (CreateUser + IssueToken each, as the admin).
  let t0 = performance.now();
  const reactors = await clients.createUsers(N, "reactor", 32);
  const userSeconds = (performance.now() - t0) / 1000;
  const channel = await clients.createChannel(owner, "hot");
  t0 = performance.now();
  await inParallel(N, 32, (i) => clients.join(reactors[i]!, channel));
  const joinSeconds = (performance.now() - t0) / 1000;
  out.setup = { users: N, userSeconds: round2(userSeconds), usersPerSecond: rate(N, userSeconds), joinSeconds: round2(joinSeconds), joinsPerSecond: rate(N, joinSeconds) };
  log(`hot message: ${n(N)} users (CreateUser + IssueToken) at ${n(rate(N, userSeconds))}/s, joined at ${n(rate(N, joinSeconds))}/s`);
  const posted = await clients.call(MessageService.method.postMessage, owner.token, { channelId: channel, text: "the hot message: react!" });
  if (posted.error || !posted.value?.message) throw new Error(`posting the hot message failed: ${posted.error}`);
  const messageId = posted.value.message.id;

  const check = checker();
  const phases: Record<string, unknown> = {};
  for (const emoji of HOT_EMOJI) {
    const errors = errorLog();
    const ms: number[] = [];
    let maxCount = 0;
    const bar = progress(`reactions ${emoji}`, N);
    const meter = cpuMeter(() => dep.pids);
    await inParallel(N, P.concurrency, async (i) => {
      const a = await clients.call(MessageService.method.addReaction, reactors[i]!.token, { channelId: channel, messageId, emoji });
      if (a.error || !a.value) return errors.add(a.error ?? "no answer");
      ms.push(a.ms);
      bar.tick();
      const mine = a.value.reactions.find((r) => r.emoji === emoji);
      if (!mine?.me) check.fail(`AddReaction ${emoji} by reactor ${i}: the answer's reaction ${mine ? "has me = false" : "is missing"}`);
      maxCount = Math.max(maxCount, mine?.count ?? 0);
    });
    const seconds = bar.end();
    if (maxCount !== N - errors.count) check.fail(`${emoji}: highest count in the answers ${maxCount}, expected ${N - errors.count}`);
    phases[emoji] = {
      reactions: ms.length,
      errors,
      seconds: round2(seconds),
      reactionsPerSecond: rate(ms.length, seconds),
      latencyMs: summarize(ms),
      highestCountAnswered: maxCount,
      cpuPercent: meter(),
    };
    log(`hot message ${emoji}: ${n(ms.length)} reactions at ${n(rate(ms.length, seconds))}/s (${P.concurrency} in flight), ${fmt(summarize(ms))} (${errors.count} errors)`);
    if (errors.count > 0) log(`  first errors: ${JSON.stringify(errors.toJSON().first)}`);
  }
  out.phases = phases;
  const totalErrors = HOT_EMOJI.reduce((s, e) => s + (phases[e] as { errors: { count: number } }).errors.count, 0);

  // Read the counts back, every way a client sees them.
  const expectOn = (m: Message | undefined, where: string, me: boolean | undefined) => {
    if (!m || m.id !== messageId) return check.fail(`${where}: the hot message is missing`);
    const got = m.reactions.map((r) => r.emoji).join(" ");
    if (got !== HOT_EMOJI.join(" ")) check.fail(`${where}: reactions [${got}], expected [${HOT_EMOJI.join(" ")}]`);
    for (const r of m.reactions) {
      if (r.count !== N) check.fail(`${where}: ${r.emoji} count ${r.count}, expected ${N}`);
      if (r.userIds.length !== Math.min(3, N) || new Set(r.userIds.map(String)).size !== r.userIds.length) {
        check.fail(`${where}: ${r.emoji} user_ids [${r.userIds.join(",")}], expected ${Math.min(3, N)} distinct reactors`);
      }
      if (me !== undefined && r.me !== me) check.fail(`${where}: ${r.emoji} me ${r.me}, expected ${me}`);
    }
  };
  const list = async (who: User) => (await clients.call(MessageService.method.listMessages, who.token, { channelId: channel, limit: 5 })).value?.messages[0];
  expectOn(await list(reactors[0]!), "ListMessages as a reactor", true);
  expectOn(await list(owner), "ListMessages as a non-reactor", false);
  // Re-adds: the same users, the same emoji again, concurrently: nothing may change.
  const reAdders = Math.min(RE_ADDS, N);
  await inParallel(reAdders, P.concurrency, async (i) => {
    const a = await clients.call(MessageService.method.addReaction, reactors[i]!.token, { channelId: channel, messageId, emoji: HOT_EMOJI[0] });
    if (a.error) return check.fail(`re-add by reactor ${i}: ${a.error}`);
    const count = a.value?.reactions.find((r) => r.emoji === HOT_EMOJI[0])?.count;
    if (count !== N) check.fail(`re-add by reactor ${i}: answered count ${count}, expected ${N}`);
  });
  expectOn(await list(reactors[N - 1]!), "ListMessages after re-adds", true);
  // ListPins, after the owner pins it.
  const pin = await clients.call(MessageService.method.pinMessage, owner.token, { channelId: channel, messageId });
  if (pin.error) check.fail(pin.error);
  expectOn(pin.value?.message, "PinMessage's answer", false);
  const pins = await clients.call(MessageService.method.listPins, reactors[1 % N]!.token, { channelId: channel });
  if (pins.error) check.fail(pins.error);
  expectOn(pins.value?.messages[0], "ListPins", true);
  // The change log: one post, a reaction_added per reaction (re-adds log nothing), one pin.
  const changes = await pageChanges(clients, owner.token, channel, P["list-changes-limit"], check);
  checkKinds(check, changes.kinds, { messagePosted: 1, reactionAdded: HOT_EMOJI.length * N - totalErrors, messagePinned: 1 });
  const adders = new Map<string, Set<bigint>>();
  for (const e of changes.events) {
    if (e.payload.case !== "reactionAdded") continue;
    const { emoji, userId } = e.payload.value;
    const set = adders.get(emoji) ?? new Set<bigint>();
    if (set.has(userId)) check.fail(`change log: ${emoji} by user ${userId} twice`);
    set.add(userId);
    adders.set(emoji, set);
  }
  for (const emoji of HOT_EMOJI) {
    if ((adders.get(emoji)?.size ?? 0) !== N) check.fail(`change log: ${adders.get(emoji)?.size ?? 0} distinct users reacted ${emoji}, expected ${N}`);
  }
  out.check = check;
  log(`hot message counts read back (ListMessages, ListPins, re-adds, change log), ${n(N)} per emoji: ${check.say()}`);
  return out;
}

// ---------------------------------------------------------------------------

async function runStore(kind: StoreKind, node: CassandraNode | undefined): Promise<Record<string, unknown>> {
  log(`=== ${kind} ===`);
  const dep = kind === "embedded" ? await startEmbedded() : await startOnCassandra(node!);
  const stopDeployment = onCleanup(`${kind} deployment`, () => dep.stop());
  const result: Record<string, unknown> = { deployment: dep.description };
  const started = Date.now();
  const clients = clientsFor(dep.url);
  try {
    const posters = await clients.createUsers(POSTERS, "poster", 16);
    const channel = await clients.createChannel(posters[0]!, "history");
    await inParallel(POSTERS - 1, POSTERS, (i) => clients.join(posters[1 + i]!, channel));

    const side = await clients.createChannel(posters[0]!, "side");
    await inParallel(POSTERS - 1, POSTERS, (i) => clients.join(posters[1 + i]!, side));

    const { seeded, history } = await seed(dep, clients, posters, channel, side);
    result.seeding = seeded;
    result.listMessages = await measureReads(dep, clients, posters, history);
    const edits = await measureEdits(dep, clients, posters, history);
    result.editMessage = edits.out;
    result.listChanges = await measureChanges(dep, clients, posters[1]!, history, edits.edited);
    result.hotMessage = await measureHotMessage(dep, clients, posters[0]!);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`${kind} failed: ${String(result.error)}`);
    if (isStopping()) throw err;
  } finally {
    clients.close();
    result.seconds = Math.round((Date.now() - started) / 1000);
    // Warnings and errors the server logged during the run.
    const bad = dep.process.logs.filter((l) => typeof l.level === "number" && l.level >= 40);
    result.serverLog = {
      warnings: bad.filter((l) => l.level === 40).length,
      errors: bad.filter((l) => (l.level as number) >= 50).length,
      first: bad.slice(0, 5).map((l) => ({ level: l.level, msg: l.msg, err: (l.err as { message?: string } | undefined)?.message })),
      stderrTail: dep.process.stderr().slice(-2000),
    };
    const s = result.serverLog as { warnings: number; errors: number; first: unknown[] };
    if (s.warnings || s.errors) log(`${kind}: the server logged ${s.warnings} warnings, ${s.errors} errors: ${JSON.stringify(s.first)}`);
    await stopDeployment();
  }
  return result;
}

// ---------------------------------------------------------------------------
// Reporting.

interface Figures {
  seeding?: Record<"history" | "unaryPostsBaseline" | "threadReplies" | "reactions", { postsPerSecond?: number; perSecond?: number; errors: { count: number } }>;
  listMessages?: { messages: number; latencyMs: LatencySummary; check: Checker; errors: { count: number } };
  editMessage?: { latencyMs: LatencySummary; check: Checker; errors: { count: number } };
  listChanges?: { changes: number; pages: number; seconds: number; changesPerSecond: number; pageLatencyMs: LatencySummary; check: Checker };
  hotMessage?: {
    phases: Record<string, { reactions: number; reactionsPerSecond: number; latencyMs: LatencySummary; errors: { count: number } }>;
    check: Checker;
  };
  error?: string;
  seconds?: number;
}

function summaryLines(stores: Record<string, Record<string, unknown>>): string[] {
  const lines: string[] = [];
  for (const [kind, raw] of Object.entries(stores)) {
    const f = raw as Figures;
    const at = (s: string) => lines.push(`${kind.padEnd(9)}  ${s}`);
    const ms = (l: LatencySummary) => `p50 ${l.p50} / p99 ${l.p99} / max ${l.max} ms`;
    if (f.seeding) {
      const s = f.seeding;
      at(
        `seed: history ${n(s.history.postsPerSecond ?? 0)} posts/s, thread replies ${n(s.threadReplies.perSecond ?? 0)}/s, ` +
          `reactions ${n(s.reactions.perSecond ?? 0)}/s (errors ${s.history.errors.count} / ${s.threadReplies.errors.count} / ${s.reactions.errors.count}); ` +
          `baseline unary posts (not replies) ${n(s.unaryPostsBaseline.perSecond ?? 0)}/s`,
      );
    }
    if (f.listMessages) {
      const l = f.listMessages;
      at(`ListMessages, ${n(l.messages)} msgs, limit ${PAGE}, random depth, 1 at a time: ${ms(l.latencyMs)} (n=${l.latencyMs.count}); pages ${l.check.say()}`);
    }
    if (f.hotMessage) {
      for (const [emoji, p] of Object.entries(f.hotMessage.phases)) {
        at(
          `reactions on one message, ${emoji} by ${n(p.reactions)} users, ${P.concurrency} in flight: ` +
            `${n(p.reactionsPerSecond)}/s, ${ms(p.latencyMs)} (errors ${p.errors.count})`,
        );
      }
      at(`hot message counts read back: ${f.hotMessage.check.say()}`);
    }
    if (f.editMessage) at(`EditMessage, 1 at a time: ${ms(f.editMessage.latencyMs)} (n=${f.editMessage.latencyMs.count}); answers ${f.editMessage.check.say()}`);
    if (f.listChanges) {
      const c = f.listChanges;
      at(
        `ListChanges, limit ${P["list-changes-limit"]}: ${n(c.changesPerSecond)} changes/s (${n(c.changes)} in ${c.pages} pages, ${c.seconds} s), ` +
          `page ${ms(c.pageLatencyMs)}; log ${c.check.say()}`,
      );
    }
    if (f.error) at(`FAILED: ${f.error.split("\n")[0]}`);
  }
  return lines;
}

function failedChecks(stores: Record<string, Record<string, unknown>>): string[] {
  const out: string[] = [];
  for (const [kind, raw] of Object.entries(stores)) {
    const f = raw as Figures;
    for (const [what, c] of [
      ["ListMessages pages", f.listMessages?.check],
      ["EditMessage answers", f.editMessage?.check],
      ["ListChanges log", f.listChanges?.check],
      ["hot message counts", f.hotMessage?.check],
    ] as const) {
      if (c && !c.ok) out.push(`${kind}: ${what}`);
    }
  }
  return out;
}

function workingTreeDirty(): boolean | undefined {
  try {
    return execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim() !== "";
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const result: Record<string, unknown> = {
    kind: "conversations",
    machine: machineInfo(),
    // The commit is in machine.commit; uncommitted changes to tracked files make it only approximate.
    workingTreeDirty: workingTreeDirty(),
    node: process.version,
    config: {
      quick: QUICK,
      stores: STORES,
      params: P,
      streams: STREAMS,
      window: WINDOW,
      posters: POSTERS,
      decorateEvery: DECORATE_EVERY,
      pageLimit: PAGE,
      accessLog: process.env.CHAT_BENCH_ACCESS_LOG ?? "true",
      existingCassandra: EXISTING_CASSANDRA ?? null,
    },
    stores: {} as Record<string, Record<string, unknown>>,
  };
  const stores = result.stores as Record<string, Record<string, unknown>>;
  const write = () => {
    result.durationSeconds = Math.round((Date.now() - started) / 1000);
    mkdirSync("bench/results", { recursive: true });
    const file = path.join("bench/results", `conversations-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
    return file;
  };
  // On a timeout or Ctrl-C, what was measured so far is still written.
  stopOnSignalsAndTimeout(P["timeout-minutes"], (why) => {
    result.aborted = why;
    console.error(`wrote partial results to ${write()}`);
  });
  log(`conversations bench${QUICK ? " (--quick)" : ""}: stores ${STORES.join(", ")}, ${JSON.stringify(P)}`);
  try {
    for (const kind of STORES) {
      if (kind === "embedded") {
        stores.embedded = await runStore("embedded", undefined);
        continue;
      }
      let node: CassandraNode | undefined;
      try {
        node = await startCassandraNode();
        stores.cassandra = await runStore("cassandra", node);
      } catch (err) {
        if (isStopping()) throw err;
        stores.cassandra = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
        console.error(`cassandra failed: ${String(stores.cassandra.error)}`);
      } finally {
        await node?.stop();
      }
    }
  } finally {
    await cleanupAll();
  }
  const file = write();
  console.log();
  for (const line of summaryLines(stores)) console.log(line);
  console.log();
  console.log(`machine: ${JSON.stringify(result.machine)}`);
  console.log(`wrote ${file} (${result.durationSeconds} s)`);
  const failed = STORES.filter((s) => stores[s]?.error !== undefined);
  const wrong = failedChecks(stores);
  if (failed.length > 0) console.error(`failed: ${failed.join(", ")}`);
  if (wrong.length > 0) console.error(`checks found wrong data: ${wrong.join(", ")}`);
  if (failed.length > 0 || wrong.length > 0) process.exitCode = 1;
}

runMain(main);

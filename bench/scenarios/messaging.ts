/**
 * Scenario "messaging": post-to-delivery latency and lost deliveries with
 * many sockets connected. The goal, embedded mode (the runner's
 * self-started system): p99 post-to-delivery <= 10 ms at 1,000 posts/s with
 * 10,000 sockets connected, no delivery lost.
 *
 * Setup: SOCKETS / SOCKETS_PER_USER users in channels of GROUP users. Each
 * worker process opens its share of the SOCKETS WebSockets (before the clock
 * starts) and keeps them. Then members post into their channels over Connect
 * JSON (MessageService/PostMessage, their own token, an idempotency key) at a
 * constant arrival rate of RATE posts/s, round-robin over channels and members;
 * each text carries its send time (shared monotonic clock of the machine).
 * Every socket measures receive time minus send time for every message it
 * gets (custom Trend post_to_delivery) and remembers which it got; at the end
 * the deliveries owed (accepted posts x sockets open in that channel) are
 * compared with the distinct deliveries received: lost must be 0.
 *
 * Run:  SOCKETS=2000 RATE=500 DURATION=15s npm run bench:scenario -- messaging
 *       (the goal: SOCKETS=10000 RATE=1000 DURATION=30s, the defaults)
 * Env:  RATE              posts per second (default 1000)
 *       DURATION          posting time (default 30s)
 *       SOCKETS           WebSockets connected (default 10000)
 *       SOCKETS_PER_USER  sockets per user (default 2)
 *       GROUP             users per channel (default 10): deliveries per post = GROUP x SOCKETS_PER_USER
 *       DELIVERY          persisted | fast | ephemeral channels (default persisted)
 *       HTTP              2 (h2c, default) | 1.1 (keep-alive) for the posts
 *       FORMAT            binary | json frames (default binary)
 *       MAX_VUS           posts in flight at most (default 256); beyond, iterations are dropped
 *       DRAIN             time allowed for the last deliveries after the last post (default 10s)
 *       WARMUP            the first WARMUP of posts (default 2s) count for losses, but their latencies go
 *                         to post_to_delivery_warmup, not post_to_delivery (JIT, first connections)
 *       WORKERS           load-generator processes (default 1 per 5,000 sockets)
 * Thresholds: post_to_delivery p(99) < 10 ms, lost == 0, checks > 99.9 %, dropped_iterations == 0.
 * Note: the latency includes the Connect JSON round trip's request half and
 * the receiving worker's event loop; on a 2-core machine the load generators
 * compete with the server.
 */
import { connectJson, type ConnectJson } from "../support/connect-json.js";
import { openLiteSocket, type LiteSocket } from "../support/lite-ws.js";
import { createUsers, joinAll, createChannel, type SeedUser } from "../support/scenario-seed.js";
import { Counter, Trend, check, envDuration, envInt, envString, mapLimit, now, parseDuration, type Options, type SetupContext, type Totals, type VU, type WorkerInfo } from "../support/scenario.js";

const RATE = envInt("RATE", 1000);
const DURATION = envDuration("DURATION", "30s");
const SOCKETS = envInt("SOCKETS", 10_000);
const PER_USER = envInt("SOCKETS_PER_USER", 2);
const GROUP = envInt("GROUP", 10);
const DELIVERY = envString("DELIVERY", "persisted").toUpperCase();
const HTTP = envString("HTTP", "2") === "1.1" ? "1.1" : "2";
const FORMAT = envString("FORMAT", "binary");
const MAX_VUS = envInt("MAX_VUS", 256);
const DRAIN = envDuration("DRAIN", "10s");
const WARMUP = envDuration("WARMUP", "2s");
/** Posts k below this are warm-up posts (iteration k is scheduled at k / RATE seconds). */
const WARMUP_POSTS = Math.floor((parseDuration(WARMUP) / 1000) * RATE);

export const options: Options = {
  executor: "constant-arrival-rate",
  rate: RATE,
  timeUnit: "1s",
  duration: DURATION,
  preAllocatedVUs: Math.min(MAX_VUS, 64),
  maxVUs: MAX_VUS,
  gracefulStop: "10s",
  drainTimeout: DRAIN,
  workers: Math.max(1, Math.ceil(SOCKETS / 5000)),
  server: { env: { CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(Math.max(20, PER_USER)) } },
  thresholds: {
    post_to_delivery: ["p(99)<10"],
    lost: ["count==0"],
    checks: ["rate>0.999"],
    dropped_iterations: ["count==0"],
  },
};

const postToDelivery = new Trend("post_to_delivery");
const postToDeliveryWarmup = new Trend("post_to_delivery_warmup");
const postMs = new Trend("post_ms");
const helloMs = new Trend("ws_hello");
const posts = new Counter("posts");
const deliveries = new Counter("deliveries");
const owedNominal = new Counter("expected_deliveries");
const duplicates = new Counter("duplicates");
new Counter("lost");
new Counter("deliveries_owed");
const closedEarly = new Counter("ws_closed_early");
const setupErrors = new Counter("ws_setup_errors");

interface Data {
  users: SeedUser[];
  /** Channel ids; channel g holds users g*GROUP .. g*GROUP+GROUP-1. */
  channels: string[];
}

export async function setup(ctx: SetupContext): Promise<Data> {
  const userCount = Math.ceil(SOCKETS / PER_USER);
  const channelCount = Math.ceil(userCount / GROUP);
  ctx.log(`  ${userCount} users x ${PER_USER} sockets, ${channelCount} ${DELIVERY.toLowerCase()} channels of ${GROUP} users`);
  const users = await createUsers(ctx.http, ctx.adminToken, userCount, `msg-${ctx.runId}`, ctx.log);
  const delivery = `DELIVERY_MODE_${DELIVERY}` as "DELIVERY_MODE_PERSISTED";
  const channels = await mapLimit(Array.from({ length: channelCount }, (_, g) => g), 16, (g) =>
    createChannel(ctx.http, users[g * GROUP]!.token, `msg-${ctx.runId}-${g}`, delivery),
  );
  await joinAll(ctx.http, users.flatMap((u, i) => (i % GROUP === 0 ? [] : [{ token: u.token, channelId: channels[Math.floor(i / GROUP)]! }])));
  return { users, channels };
}

// ---- per worker process: its sockets, its posting client
interface Receiver {
  group: number;
  seen: Set<number>;
  socket?: LiteSocket;
}
const receivers: Receiver[] = [];
let openPerGroup: number[] = [];
let postsPerGroup: number[] = [];
let http: ConnectJson | undefined;
let stopping = false;
let failuresLogged = 0;
const MARKER = Buffer.from("p2d:");

function onMessage(r: Receiver, payload: Buffer): void {
  const at = payload.indexOf(MARKER);
  if (at < 0) return;
  const t = now();
  const colon = payload.indexOf(0x3a, at + 4);
  let end = colon + 1;
  let seq = 0;
  for (let c = payload[end]; c !== undefined && c >= 0x30 && c <= 0x39; c = payload[++end]) seq = seq * 10 + (c - 0x30);
  const sent = Number(payload.toString("latin1", at + 4, colon));
  (seq < WARMUP_POSTS ? postToDeliveryWarmup : postToDelivery).add(t - sent);
  deliveries.add(1);
  if (r.seen.has(seq)) duplicates.add(1);
  else r.seen.add(seq);
}

export async function setupWorker(data: Data, worker: WorkerInfo): Promise<void> {
  openPerGroup = new Array<number>(data.channels.length).fill(0);
  postsPerGroup = new Array<number>(data.channels.length).fill(0);
  http = connectJson(worker.api, { httpVersion: HTTP, connections: HTTP === "2" ? 4 : MAX_VUS });
  const mine: number[] = [];
  for (let s = worker.index; s < data.users.length * PER_USER && s < SOCKETS; s += worker.count) mine.push(s);
  const url = FORMAT === "json" ? `${worker.ws}?format=json` : worker.ws;
  await mapLimit(mine, 200, async (s) => {
    const userIndex = Math.floor(s / PER_USER);
    const r: Receiver = { group: Math.floor(userIndex / GROUP), seen: new Set() };
    const t0 = now();
    let hello: () => void = () => {};
    const gotHello = new Promise<void>((resolve) => (hello = resolve));
    let first = true;
    try {
      r.socket = await openLiteSocket({
        url,
        token: data.users[userIndex]!.token,
        onMessage: (payload) => {
          if (first) {
            first = false;
            hello();
            return;
          }
          onMessage(r, payload);
        },
        onClose: () => {
          if (!stopping) closedEarly.add(1);
        },
      });
      await Promise.race([gotHello, new Promise((_, reject) => setTimeout(() => reject(new Error("no hello within 15 s")), 15_000))]);
      helloMs.add(now() - t0);
      receivers.push(r);
      openPerGroup[r.group]!++;
      check(true, { "socket open with hello (setup)": (x) => x });
    } catch (err) {
      r.socket?.destroy();
      setupErrors.add(1);
      check(false, { "socket open with hello (setup)": (x) => x });
      if (failuresLogged++ < 3) console.error(`[worker ${worker.index}] socket setup failed: ${String(err)}`);
    }
  });
}

export default async function (data: Data, vu: VU): Promise<void> {
  const k = vu.iterationInTest;
  const g = k % data.channels.length;
  const members = Math.min(GROUP, data.users.length - g * GROUP);
  const poster = data.users[g * GROUP + (Math.floor(k / data.channels.length) % members)]!;
  const text = `p2d:${now().toFixed(3)}:${k} message ${k}`;
  const r = await http!.call("chat.v1.MessageService/PostMessage", { channelId: data.channels[g], text, clientMsgId: `m${k}` }, poster.token);
  postMs.add(r.ms);
  if (check(r, { "post accepted (200)": (x) => x.status === 200 })) {
    posts.add(1);
    postsPerGroup[g]!++;
    owedNominal.add(members * PER_USER);
  } else if (failuresLogged++ < 3) console.error(`[worker ${vu.worker.index}] post failed: ${r.status} ${r.error ?? JSON.stringify(r.body)}`);
}

export async function teardownWorker(): Promise<unknown> {
  stopping = true;
  let unique = 0;
  for (const r of receivers) unique += r.seen.size;
  await mapLimit(receivers, 500, (r) => r.socket?.close(1000, 1000) ?? Promise.resolve());
  http?.close();
  return { sockets: receivers.length, openPerGroup, postsPerGroup, unique };
}

/** Every delivery owed (nominally: all sockets open) has arrived. */
export function drained(t: Totals): boolean {
  return t.counter("deliveries") >= t.counter("expected_deliveries");
}

export function finalize(_t: Totals, reports: unknown[]): Record<string, number> {
  const rs = reports.filter((r): r is { openPerGroup: number[]; postsPerGroup: number[]; unique: number } => r !== null && typeof r === "object");
  const groups = Math.max(0, ...rs.map((r) => r.openPerGroup.length));
  let owed = 0;
  for (let g = 0; g < groups; g++) {
    const open = rs.reduce((a, r) => a + (r.openPerGroup[g] ?? 0), 0);
    const posted = rs.reduce((a, r) => a + (r.postsPerGroup[g] ?? 0), 0);
    owed += open * posted;
  }
  const unique = rs.reduce((a, r) => a + r.unique, 0);
  return { deliveries_owed: owed, lost: Math.max(0, owed - unique) };
}

/**
 * Scenario "history": ListMessages deep into a large channel, latency per page depth.
 *
 * Setup seeds MESSAGES messages into one channel over StreamPostMessages
 * (SEED_STREAMS gRPC streams, SEED_WINDOW posts in flight each; the rate is
 * printed and counted as seeded_messages), then scrolls back through the
 * whole channel once, one page at a time, newest first, as a client would
 * (Connect JSON, limit PAGE; latencies in the trend scroll_back), keeping the
 * cursor of every page. Iterations then read pages at random depths, drawn
 * log-uniformly so that every order of magnitude of depth gets its share:
 * list (all reads) and list_depth_<range> per depth range (page 0 is the
 * newest page, page 1,000 is 50,000 messages back with PAGE=50). Each page
 * is checked: full, newest first, all below its cursor.
 *
 * Run:  MESSAGES=20000 VUS=1 DURATION=15s npm run bench:scenario -- history
 * Env:  MESSAGES     messages in the channel (default 100000)
 *       PAGE         ListMessages limit (default 50, at most 200)
 *       VUS          concurrent readers (default 1: one read at a time)
 *       DURATION     reading time (default 20s)
 *       AGE          wait this long after seeding before reading (default 0s); pages older than
 *                    60 s are immutable and may be served from the API's page cache
 *       SEED_STREAMS, SEED_WINDOW  seeding streams and posts in flight per stream (default 8, 16)
 *       WORKERS      load-generator processes (default 1)
 * Thresholds: list p(99) < 15 ms, checks > 99.9 %.
 */
import { connectJson } from "../support/connect-json.js";
import { h2session } from "../support/h2-caller.js";
import { openPostStream } from "../support/post-stream.js";
import { createChannel, createUsers } from "../support/scenario-seed.js";
import {
  Counter,
  Trend,
  check,
  envDuration,
  envInt,
  formatDuration,
  now,
  parseDuration,
  sleep,
  type Options,
  type SetupContext,
  type VU,
  type WorkerInfo,
} from "../support/scenario.js";
import type { ConnectJson } from "../support/connect-json.js";

const MESSAGES = envInt("MESSAGES", 100_000);
const PAGE = envInt("PAGE", 50);
const VUS = envInt("VUS", 1);
const DURATION = envDuration("DURATION", "20s");
const AGE = envDuration("AGE", "0s");
const SEED_STREAMS = envInt("SEED_STREAMS", 8);
const SEED_WINDOW = envInt("SEED_WINDOW", 16);

export const options: Options = {
  executor: "constant-vus",
  vus: VUS,
  duration: DURATION,
  gracefulStop: "10s",
  workers: 1,
  setupTimeout: "15m",
  thresholds: {
    list: ["p(99)<15"],
    checks: ["rate>0.999"],
  },
};

const list = new Trend("list");
const scrollBack = new Trend("scroll_back");
const seeded = new Counter("seeded_messages");
/** Depth ranges in pages: [from, to) and the trend of each. */
const RANGES: Array<{ from: number; to: number; trend: Trend }> = [
  [0, 1, "list_depth_0"],
  [1, 10, "list_depth_1_9"],
  [10, 100, "list_depth_10_99"],
  [100, 1000, "list_depth_100_999"],
  [1000, 10_000, "list_depth_1000_9999"],
  [10_000, Infinity, "list_depth_10000_up"],
].map(([from, to, name]) => ({ from: from as number, to: to as number, trend: new Trend(name as string) }));

interface Data {
  channelId: string;
  token: string;
  /** cursors[d]: the `before` of page d (page 0, the newest, has none). */
  cursors: string[];
}

export async function setup(ctx: SetupContext): Promise<Data> {
  const [user] = await createUsers(ctx.http, ctx.adminToken, 1, `hist-${ctx.runId}`);
  const channelId = await createChannel(ctx.http, user!.token, `hist-${ctx.runId}`);

  // Seed over StreamPostMessages: SEED_STREAMS streams, SEED_WINDOW posts in flight on each.
  const session = h2session(ctx.api);
  const t0 = now();
  let next = 0;
  let lastLog = Date.now();
  await Promise.all(
    Array.from({ length: SEED_STREAMS }, async () => {
      const stream = openPostStream(session, user!.token);
      const inflight = new Set<Promise<unknown>>();
      while (next < MESSAGES) {
        const i = next++;
        const p = stream.post(BigInt(channelId), `history message ${i}`).then((answer) => {
          if (answer.error) throw new Error(`seeding: post ${i} rejected: ${answer.error.message}`);
          seeded.add(1);
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p)).catch(() => {});
        if (inflight.size >= SEED_WINDOW) await Promise.race(inflight);
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          ctx.log(`  seeded ${i}/${MESSAGES}`);
        }
      }
      await Promise.all(inflight);
      await stream.end();
    }),
  );
  session.close();
  const seedSeconds = (now() - t0) / 1000;
  ctx.log(`  seeded ${MESSAGES} messages in ${seedSeconds.toFixed(1)} s (${Math.round(MESSAGES / seedSeconds)}/s over StreamPostMessages)`);

  // Scroll back once through everything, keeping each page's cursor.
  const cursors: string[] = [""];
  let before = "";
  for (;;) {
    const r = await ctx.http.call<{ messages?: Array<{ id: string }>; nextCursor?: string; hasMore?: boolean }>(
      "chat.v1.MessageService/ListMessages",
      { channelId, limit: PAGE, ...(before && { before }) },
      user!.token,
    );
    if (r.status !== 200) throw new Error(`scrolling back: ListMessages answered ${r.status} ${JSON.stringify(r.body)}`);
    scrollBack.add(r.ms);
    if (!r.body.hasMore || !r.body.nextCursor) break;
    before = r.body.nextCursor;
    cursors.push(before);
  }
  ctx.log(`  scrolled back through ${cursors.length} pages of ${PAGE}`);
  if (parseDuration(AGE) > 0) {
    ctx.log(`  waiting ${formatDuration(parseDuration(AGE))} (AGE) before reading`);
    await sleep(parseDuration(AGE));
  }
  return { channelId, token: user!.token, cursors };
}

let http: ConnectJson | undefined;

export function setupWorker(_data: Data, worker: WorkerInfo): void {
  http = connectJson(worker.api, { httpVersion: "2", connections: 2 });
}

export default async function (data: Data, _vu: VU): Promise<void> {
  const pages = data.cursors.length;
  // Log-uniform depth in [0, pages): each decade of depth is drawn about as often.
  const depth = Math.min(pages - 1, Math.floor(Math.exp(Math.random() * Math.log(pages + 1))) - 1);
  const before = data.cursors[depth]!;
  const r = await http!.call<{ messages?: Array<{ id: string }> }>(
    "chat.v1.MessageService/ListMessages",
    { channelId: data.channelId, limit: PAGE, ...(before && { before }) },
    data.token,
  );
  list.add(r.ms);
  RANGES.find((x) => depth >= x.from && depth < x.to)!.trend.add(r.ms);
  const messages = r.body.messages ?? [];
  const full = depth < pages - 1 ? PAGE : Math.min(PAGE, MESSAGES - depth * PAGE);
  check(r, {
    "ListMessages 200": (x) => x.status === 200,
    "page full": () => messages.length === full,
    "newest first, below the cursor": () =>
      messages.every((m, i) => (i === 0 ? before === "" || BigInt(m.id) < BigInt(before) : BigInt(m.id) < BigInt(messages[i - 1]!.id))),
  });
}

export function teardownWorker(): null {
  http?.close();
  return null;
}

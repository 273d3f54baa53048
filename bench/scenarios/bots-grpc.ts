/**
 * Scenario "bots-grpc": bots on plain gRPC, written as a bot author would,
 * with @grpc/grpc-js and @grpc/proto-loader over the project's .proto files
 * (as test/api/grpc-bot.test.ts): no generated TypeScript, no Connect.
 *
 * Each VU is a bot with its own token and its own HTTP/2 connection, a member
 * of one of CHANNELS channels. An iteration posts (PostMessage with an
 * idempotency key) and then reads the newest page (ListMessages, LIST_LIMIT),
 * checking that its own post is on it (read-your-writes). Measures rates
 * (grpc_posts, grpc_lists per second) and latencies (grpc_post, grpc_list).
 *
 * Run:  BOTS=16 DURATION=20s npm run bench:scenario -- bots-grpc
 *       RATE=500 ... for a constant arrival rate instead of bots looping back to back
 * Env:  BOTS        bots, i.e. VUs (default 16)
 *       DURATION    default 20s
 *       RATE        iterations per second (constant-arrival-rate, at most BOTS in flight); unset: constant-vus
 *       CHANNELS    channels the bots are spread over (default 4)
 *       LIST_LIMIT  page size of ListMessages (default 50)
 *       WORKERS     load-generator processes (default 1)
 * Thresholds: grpc_post p(99) < 100 ms, grpc_list p(99) < 100 ms, checks > 99.9 %.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import path from "node:path";
import { createChannel, createUsers, joinAll, type SeedUser } from "../support/scenario-seed.js";
import { Counter, Trend, check, envDuration, envInt, now, type Options, type SetupContext, type VU } from "../support/scenario.js";

const BOTS = envInt("BOTS", envInt("VUS", 16));
const DURATION = envDuration("DURATION", "20s");
const RATE = envInt("RATE", 0);
const CHANNELS = envInt("CHANNELS", 4);
const LIST_LIMIT = envInt("LIST_LIMIT", 50);

export const options: Options = {
  ...(RATE > 0
    ? { executor: "constant-arrival-rate" as const, rate: RATE, timeUnit: "1s", duration: DURATION, preAllocatedVUs: BOTS, maxVUs: BOTS }
    : { executor: "constant-vus" as const, vus: BOTS, duration: DURATION }),
  gracefulStop: "10s",
  workers: 1,
  thresholds: {
    grpc_post: ["p(99)<100"],
    grpc_list: ["p(99)<100"],
    checks: ["rate>0.999"],
  },
};

const postTrend = new Trend("grpc_post");
const listTrend = new Trend("grpc_list");
const postCount = new Counter("grpc_posts");
const listCount = new Counter("grpc_lists");
const grpcErrors = new Counter("grpc_errors");

// Loaded once per process, as a bot loads its .proto files at start (k6's init context).
type Callback = (err: grpc.ServiceError | null, res: any) => void;
type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => void;
type MessageClient = grpc.Client & { PostMessage: Unary; ListMessages: Unary };
const definition = protoLoader.loadSync(["chat/v1/message.proto"], {
  includeDirs: [path.resolve("proto")],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const chat = grpc.loadPackageDefinition(definition) as any;
const MessageService = chat.chat.v1.MessageService as new (target: string, creds: grpc.ChannelCredentials, options?: object) => MessageClient;

interface Data {
  bots: SeedUser[];
  channels: string[];
}

export async function setup(ctx: SetupContext): Promise<Data> {
  ctx.log(`  ${BOTS} bots in ${CHANNELS} channels`);
  const bots = await createUsers(ctx.http, ctx.adminToken, BOTS, `bot-${ctx.runId}`, ctx.log);
  const channels: string[] = [];
  for (let c = 0; c < Math.min(CHANNELS, bots.length); c++) channels.push(await createChannel(ctx.http, bots[c]!.token, `bots-${ctx.runId}-${c}`));
  await joinAll(ctx.http, bots.flatMap((b, i) => (i < channels.length ? [] : [{ token: b.token, channelId: channels[i % channels.length]! }])));
  return { bots, channels };
}

const clients: MessageClient[] = [];

function unary(client: MessageClient, method: "PostMessage" | "ListMessages", req: object, md: grpc.Metadata): Promise<{ err: grpc.ServiceError | null; res: any; ms: number }> {
  const t0 = now();
  return new Promise((resolve) => client[method](req, md, { deadline: Date.now() + 30_000 }, (err, res) => resolve({ err, res, ms: now() - t0 })));
}

export default async function (data: Data, vu: VU): Promise<void> {
  const b = (vu.id - 1) % data.bots.length;
  const bot = data.bots[b]!;
  const channelId = data.channels[b % data.channels.length]!;
  let client = vu.state.client as MessageClient | undefined;
  if (!client) {
    // One HTTP/2 connection per bot, as separate bot processes would have.
    client = new MessageService(new URL(vu.worker.api).host, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(client);
    vu.state.client = client;
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${bot.token}`);
    vu.state.md = md;
  }
  const md = vu.state.md as grpc.Metadata;

  const post = await unary(client, "PostMessage", { channel_id: channelId, text: `bot ${b} says ${vu.iterationInTest}`, client_msg_id: `b${vu.iterationInTest}` }, md);
  postTrend.add(post.ms);
  if (post.err) grpcErrors.add(1);
  else postCount.add(1);
  check(post, { "PostMessage OK": (p) => p.err === null && typeof p.res?.message?.id === "string" });

  const list = await unary(client, "ListMessages", { channel_id: channelId, limit: LIST_LIMIT }, md);
  listTrend.add(list.ms);
  if (list.err) grpcErrors.add(1);
  else listCount.add(1);
  check(list, {
    "ListMessages OK": (l) => l.err === null && Array.isArray(l.res?.messages),
    "own post on the newest page": (l) => post.err !== null || (l.res?.messages as Array<{ id: string }> | undefined)?.some((m) => m.id === post.res.message.id) === true,
  });
}

export function teardownWorker(): null {
  for (const c of clients) c.close();
  return null;
}

/**
 * Scenario "connections": how fast and how reliably the WebSocket gateway
 * takes a ramp of authenticated clients, and whether it keeps them.
 *
 * Measures: ws_connecting (TCP connect to the HTTP 101), ws_hello (connect to
 * the hello frame, i.e. the session started and the user's channels were
 * read: the connect time a client sees), upgrade errors by HTTP status, and
 * sockets the server closed while they should have stayed open (ws_closed_early).
 * Each VU holds one socket from the moment it starts until the ramp-down (or,
 * with SESSION, reconnects every SESSION: connection churn).
 *
 * Run:  SOCKETS=2000 RAMP=10s HOLD=10s npm run bench:scenario -- connections
 *       (against a running deployment: add CHAT_TARGET_API, CHAT_TARGET_WS, CHAT_ADMIN_TOKEN)
 * Env:  SOCKETS           sockets at the top of the ramp (default 1000)
 *       SOCKETS_PER_USER  sockets per user, devices (default 2; the gateway allows 20 by default)
 *       GROUP             users per channel; each user is also in one channel of everyone (default 10)
 *       RAMP, HOLD, RAMP_DOWN  stage lengths (default 10s, 10s, 0s: all close at the end)
 *       SESSION           close and reconnect each socket after this long (default: hold until the end)
 *       FORMAT            binary | json frames (default binary)
 *       WORKERS           load-generator processes (default 1 per 4,000 sockets)
 * Thresholds: ws_hello p(99) < 1 s, ws_connecting p(99) < 500 ms, checks > 99.9 %, ws_closed_early == 0.
 */
import { openLiteSocket, UpgradeError, type LiteSocket } from "../support/lite-ws.js";
import { createChannel, createUsers, joinAll, type SeedUser } from "../support/scenario-seed.js";
import { Counter, Gauge, Trend, check, envDuration, envInt, envString, now, parseDuration, sleep, type Options, type SetupContext, type VU } from "../support/scenario.js";

const SOCKETS = envInt("SOCKETS", 1000);
const PER_USER = envInt("SOCKETS_PER_USER", 2);
const GROUP = envInt("GROUP", 10);
const RAMP = envDuration("RAMP", "10s");
const HOLD = envDuration("HOLD", "10s");
const RAMP_DOWN = envDuration("RAMP_DOWN", "0s");
const SESSION = envString("SESSION", "");
const FORMAT = envString("FORMAT", "binary");

const stages = [
  { duration: RAMP, target: SOCKETS },
  { duration: HOLD, target: SOCKETS },
  ...(parseDuration(RAMP_DOWN) > 0 ? [{ duration: RAMP_DOWN, target: 0 }] : []),
];

export const options: Options = {
  executor: "ramping-vus",
  startVUs: 0,
  stages,
  gracefulRampDown: "5s",
  gracefulStop: "10s",
  workers: Math.max(1, Math.ceil(SOCKETS / 4000)),
  server: { env: { CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: String(Math.max(20, PER_USER)) } },
  thresholds: {
    ws_hello: ["p(99)<1000"],
    ws_connecting: ["p(99)<500"],
    checks: ["rate>0.999"],
    ws_closed_early: ["count==0"],
  },
};

const connecting = new Trend("ws_connecting");
const hello = new Trend("ws_hello");
const sessions = new Counter("ws_sessions");
const errors = new Counter("ws_errors");
const closedEarly = new Counter("ws_closed_early");
const open = new Gauge("ws_open");
let openCount = 0;

interface Data {
  users: SeedUser[];
}

export async function setup(ctx: SetupContext): Promise<Data> {
  const userCount = Math.ceil(SOCKETS / PER_USER);
  ctx.log(`  ${userCount} users (${PER_USER} sockets each), channels of ${GROUP} and one of everyone`);
  const users = await createUsers(ctx.http, ctx.adminToken, userCount, `conn-${ctx.runId}`, ctx.log);
  const everyone = await createChannel(ctx.http, users[0]!.token, `conn-${ctx.runId}-all`);
  const groups: string[] = [];
  for (let g = 0; g * GROUP < users.length; g++) groups.push(await createChannel(ctx.http, users[g * GROUP]!.token, `conn-${ctx.runId}-g${g}`));
  await joinAll(ctx.http, [
    ...users.slice(1).map((u) => ({ token: u.token, channelId: everyone })),
    ...users.flatMap((u, i) => (i % GROUP === 0 ? [] : [{ token: u.token, channelId: groups[Math.floor(i / GROUP)]! }])),
  ]);
  return { users };
}

const url = (ws: string) => (FORMAT === "json" ? `${ws}?format=json` : ws);

export default async function (data: Data, vu: VU): Promise<void> {
  const user = data.users[Math.floor((vu.id - 1) / PER_USER) % data.users.length]!;
  const t0 = now();
  let socket: LiteSocket | undefined;
  let status = 101;
  let gotHello: (first: Buffer) => void = () => {};
  const firstFrame = new Promise<Buffer>((resolve) => (gotHello = resolve));
  let helloSeen = false;
  let closedBy: { code: number } | undefined;
  let onClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  try {
    socket = await openLiteSocket({
      url: url(vu.worker.ws),
      token: user.token,
      timeoutMs: 10_000,
      onMessage: (payload) => {
        if (!helloSeen) {
          helloSeen = true;
          gotHello(Buffer.from(payload.subarray(0, 16)));
        }
      },
      onClose: (code) => {
        closedBy = { code };
        onClosed();
      },
    });
    connecting.add(socket.upgradeMs);
  } catch (err) {
    status = err instanceof UpgradeError ? err.status : 0;
    errors.add(1);
    new Counter(`ws_errors_${status === 0 ? "network" : `http_${status}`}`).add(1);
  }
  if (!check(status, { "upgraded (101)": (s) => s === 101 }) || !socket) {
    await sleep(1000, vu.signal);
    return;
  }
  open.add(++openCount);
  sessions.add(1);
  const first = await Promise.race([firstFrame, closed.then(() => undefined), sleep(15_000).then(() => undefined)]);
  if (first) hello.add(now() - t0);
  // The first frame is the hello: field 1 of ServerFrame (binary: tag 0x0a), or {"hello": ...} in JSON.
  check(first, { "hello frame first": (f) => f !== undefined && (FORMAT === "json" ? f.toString("utf8").startsWith('{"hello"') : f[0] === 0x0a) });
  const hold = SESSION ? sleep(parseDuration(SESSION), vu.signal) : new Promise<void>((r) => (vu.signal.aborted ? r() : vu.signal.addEventListener("abort", () => r(), { once: true })));
  await Promise.race([hold, closed]);
  const early = closedBy !== undefined;
  if (early) closedEarly.add(1);
  check(closedBy, { "held until the client closed": (c) => c === undefined });
  if (!early) await socket.close(1000, 2000);
  open.add(--openCount);
}

/**
 * ===========================================================================
 *  NOT PART OF THE PRODUCT. A benchmark baseline only (bench/fanout-compare.ts).
 *  Never deployed, never imported by the product, not tested by `npm test`.
 * ===========================================================================
 *
 * The smallest server that does the gateway's job for the fan-out benchmark,
 * the idiomatic way with the `ws` package, so that our gateway's figures can
 * be read against a well-known reference measured in the same run:
 *
 * - WebSocket upgrades on /ws, authenticated with the same HS256 JWT as the
 *   product (issuer "chat", audience "chat.v1", numeric `sub`, `exp`; the
 *   secret is BASELINE_JWT_SECRET, the same as CHAT_JWT_SECRET), from
 *   `Authorization: Bearer` or `?access_token=`; 401 otherwise. Verified tokens
 *   are cached until they expire, as the product does.
 * - Channel membership is fixed at start-up: BASELINE_MEMBERS names a JSON file
 *   { "<userId>": ["<channelId>", ...] } written by the benchmark (the product
 *   reads it from its store per connection; here it is in memory).
 * - A hello frame on open, then every message posted in the socket's channels,
 *   as binary frames carrying the same protobuf ServerFrame as the product
 *   (chat.v1 event messagePosted), so the bytes on the wire are comparable.
 * - Fan-out: each post is encoded ONCE and the same Buffer goes to every socket
 *   of the channel with `ws.send(buf)` (the idiomatic `ws` broadcast).
 *
 * Posting (the sender must be a member of the channel, as in the product):
 *   POST /post  {"channel": "<id>", "text": "...", "sentAt"?: <epoch ms>}  with a
 *               bearer token → 200 {"id": "<id>", "deliveredTo": n}
 *   WebSocket /publish (same auth): text frames
 *               {"ref": n, "channel": "<id>", "text": "...", "sentAt"?: <epoch ms>}
 *               → {"ref": n, "id": "<id>", "deliveredTo": n} once fanned out
 *               ({"ref": n, "error": "..."} when refused). A stream of posts on one
 *               connection, like the product's StreamPostMessages.
 *   `sentAt`, when given, becomes the message's created_at.
 * Observability:
 *   GET /stats   {"connections", "channels", "posts", "deliveries", "memory"}
 *   GET /metrics Prometheus text (connections, RSS, heap)
 *   POST /gc     two full GCs, then the memory (needs node --expose-gc; else 501)
 *
 * Left out on purpose (the product has them): durable storage, a bus, resume,
 * posting over /ws, pings and idle timeout, backpressure cut-off, rate limits,
 * per-user connection caps, JSON wire format.
 *
 * Environment: BASELINE_JWT_SECRET (required), BASELINE_MEMBERS (file),
 * BASELINE_HOST (127.0.0.1), BASELINE_PORT (0 = any). Prints one JSON line
 * {"msg": "baseline listening", "url": "ws://host:port/ws", "port": n} on stdout
 * (and sends it to the parent over IPC when forked). SIGTERM/SIGINT: stops
 * accepting, closes every socket with 1001 and exits.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createVerifier } from "fast-jwt";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { ServerFrameSchema } from "../../gen/chat/v1/frame_pb.js";

const SECRET = process.env.BASELINE_JWT_SECRET;
if (!SECRET || SECRET.length < 32) {
  process.stderr.write("BASELINE_JWT_SECRET (at least 32 characters) is required\n");
  process.exit(2);
}
const HOST = process.env.BASELINE_HOST ?? "127.0.0.1";
const PORT = Number(process.env.BASELINE_PORT ?? "0");
const verifyToken = createVerifier({ key: SECRET, algorithms: ["HS256"], allowedIss: "chat", allowedAud: "chat.v1", requiredClaims: ["sub", "exp"] });
const SERVER_ID = `baseline-ws/${process.pid}`;
const MAX_BODY = 64 * 1024;

/** userId → channels, from the start-up file. */
const membership = new Map<bigint, bigint[]>();
if (process.env.BASELINE_MEMBERS) {
  const raw = JSON.parse(readFileSync(process.env.BASELINE_MEMBERS, "utf8")) as Record<string, string[]>;
  for (const [user, channels] of Object.entries(raw)) membership.set(BigInt(user), channels.map((c) => BigInt(c)));
}

/** channelId → its open sockets. */
const channels = new Map<bigint, Set<WebSocket>>();
/** Every open socket (subscribers and publishers), to close them on SIGTERM. */
const open = new Set<WebSocket>();
/** Per socket: its user and channels (a WeakMap keeps the socket object as `ws` made it). */
const socketInfo = new WeakMap<WebSocket, { userId: bigint; channels: bigint[] }>();
let connections = 0;
let posts = 0;
let deliveries = 0;
let seq = 0;

// ---------------------------------------------------------------------------
// Authentication: the product's claims, verified tokens cached until expiry.

const verified = new Map<string, { userId: bigint; expiresAt: number }>();

async function authenticate(authorization: string | undefined, accessToken: string | null): Promise<bigint> {
  let token: string | undefined;
  if (authorization) token = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  else if (accessToken) token = accessToken;
  if (!token) throw new Error("missing bearer token");
  const cached = verified.get(token);
  if (cached) {
    if (cached.expiresAt > Date.now()) return cached.userId;
    verified.delete(token);
    throw new Error("token expired");
  }
  const payload = verifyToken(token) as { sub?: unknown; exp?: number };
  if (typeof payload.sub !== "string" || !/^\d{1,20}$/.test(payload.sub)) throw new Error("bad subject");
  const userId = BigInt(payload.sub);
  verified.set(token, { userId, expiresAt: (payload.exp ?? 0) * 1000 });
  return userId;
}

// ---------------------------------------------------------------------------
// Fan-out: encode once, send the same bytes to every socket of the channel.

function publish(senderId: bigint, channelId: bigint, text: string, sentAt: number | undefined): { id: bigint; deliveredTo: number } {
  const now = Date.now();
  // Shaped like the product's ids (time | sequence), so frames have the same size.
  const id = (BigInt(now) << 22n) | BigInt(seq++ & 0x3fffff);
  const bytes = toBinary(
    ServerFrameSchema,
    create(ServerFrameSchema, {
      frame: {
        case: "event",
        value: {
          at: timestampFromMs(now),
          channelId,
          payload: {
            case: "messagePosted",
            value: { message: { id, channelId, senderId, text, createdAt: timestampFromMs(sentAt ?? now) } },
          },
        },
      },
    }),
  );
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sockets = channels.get(channelId);
  let n = 0;
  if (sockets) {
    for (const ws of sockets) {
      ws.send(buf);
      n++;
    }
  }
  posts++;
  deliveries += n;
  return { id, deliveredTo: n };
}

function postFrom(senderId: bigint, body: { channel?: unknown; text?: unknown; sentAt?: unknown }) {
  if (typeof body.channel !== "string" && typeof body.channel !== "number") throw new Error("channel: required");
  if (typeof body.text !== "string" || body.text.length === 0) throw new Error("text: required");
  const channelId = BigInt(body.channel);
  if (!membership.get(senderId)?.includes(channelId)) throw new Error("not a member of the channel");
  return publish(senderId, channelId, body.text, typeof body.sentAt === "number" ? body.sentAt : undefined);
}

// ---------------------------------------------------------------------------
// WebSocket endpoints.

const wss = new WebSocketServer({
  noServer: true,
  clientTracking: false,
  perMessageDeflate: false,
  maxPayload: MAX_BODY,
  handleProtocols: (offered) => (offered.has("chat.v1.proto") ? "chat.v1.proto" : offered.has("chat.v1") ? "chat.v1" : false),
});

function onSubscriber(ws: WebSocket, userId: bigint): void {
  const mine = membership.get(userId) ?? [];
  socketInfo.set(ws, { userId, channels: mine });
  for (const c of mine) {
    let set = channels.get(c);
    if (!set) channels.set(c, (set = new Set()));
    set.add(ws);
  }
  connections++;
  open.add(ws);
  ws.send(
    toBinary(
      ServerFrameSchema,
      create(ServerFrameSchema, {
        frame: {
          case: "hello",
          value: { userId, sessionId: randomUUID(), serverTime: timestampFromMs(Date.now()), channelIds: mine, maxFrameBytes: MAX_BODY, serverId: SERVER_ID },
        },
      }),
    ),
    { binary: true },
  );
  ws.on("error", () => {});
  ws.on("close", () => {
    connections--;
    open.delete(ws);
    for (const c of socketInfo.get(ws)?.channels ?? []) {
      const set = channels.get(c);
      set?.delete(ws);
      if (set?.size === 0) channels.delete(c);
    }
  });
}

function onPublisher(ws: WebSocket, userId: bigint): void {
  open.add(ws);
  ws.on("close", () => open.delete(ws));
  ws.on("error", () => {});
  ws.on("message", (data: Buffer) => {
    let ref: unknown;
    try {
      const body = JSON.parse(data.toString("utf8")) as { ref?: unknown; channel?: unknown; text?: unknown; sentAt?: unknown };
      ref = body.ref;
      const { id, deliveredTo } = postFrom(userId, body);
      ws.send(JSON.stringify({ ref, id: id.toString(), deliveredTo }));
    } catch (err) {
      ws.send(JSON.stringify({ ref, error: err instanceof Error ? err.message : String(err) }));
    }
  });
}

function refuse(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

// ---------------------------------------------------------------------------
// HTTP.

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const memory = () => process.memoryUsage();
  if (req.method === "GET" && url.pathname === "/stats") {
    return json(200, { connections, channels: channels.size, posts, deliveries, memory: memory() });
  }
  if (req.method === "GET" && url.pathname === "/metrics") {
    const m = memory();
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    return res.end(
      `baseline_connections ${connections}\nbaseline_posts_total ${posts}\nbaseline_deliveries_total ${deliveries}\n` +
        `process_resident_memory_bytes ${m.rss}\nnodejs_heap_size_used_bytes ${m.heapUsed}\nnodejs_external_memory_bytes ${m.external}\n`,
    );
  }
  if (req.method === "POST" && url.pathname === "/gc") {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) return json(501, { error: "start with node --expose-gc" });
    gc();
    gc();
    return json(200, { memory: memory() });
  }
  if (req.method === "POST" && url.pathname === "/post") {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => {
      authenticate(req.headers.authorization, null).then(
        (userId) => {
          try {
            const { id, deliveredTo } = postFrom(userId, JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>);
            json(200, { id: id.toString(), deliveredTo });
          } catch (err) {
            json(400, { error: err instanceof Error ? err.message : String(err) });
          }
        },
        () => json(401, { error: "unauthenticated" }),
      );
    });
    return;
  }
  json(404, { error: "not found" });
});
server.keepAliveTimeout = 60_000;

server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on("error", () => {});
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== "/ws" && url.pathname !== "/publish") return refuse(socket, "404 Not Found");
  authenticate(req.headers.authorization, url.searchParams.get("access_token")).then(
    (userId) => {
      if (socket.destroyed) return;
      wss.handleUpgrade(req, socket, head, (ws) => (url.pathname === "/ws" ? onSubscriber(ws, userId) : onPublisher(ws, userId)));
    },
    () => refuse(socket, "401 Unauthorized"),
  );
});

server.listen(PORT, HOST, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : PORT;
  const line = { msg: "baseline listening", url: `ws://${HOST}:${port}/ws`, port, pid: process.pid };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.send?.({ type: "listening", ...line });
});

// ---------------------------------------------------------------------------
// Graceful stop.

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeAllConnections();
  for (const ws of open) ws.close(1001, "server shutting down");
  // Exits once every socket finished its closing handshake; the rest are dropped after 3 s.
  const check = setInterval(() => open.size === 0 && process.exit(0), 50);
  setTimeout(() => {
    clearInterval(check);
    for (const ws of open) ws.terminate();
    process.exit(0);
  }, 3000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop);

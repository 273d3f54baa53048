/**
 * A load-generator process for the connection-scale benchmark
 * (bench/connection-scale.ts): opens its share of authenticated WebSockets,
 * a bounded number at a time, each from one of its own source addresses
 * (localAddress in 127.0.0.0/8, so that no source address runs out of
 * ephemeral ports), waits for each socket's hello frame (the session started:
 * authenticated, channels read), then holds them idle, answering pings.
 * Every failure is counted by kind. On request it watches for one broadcast
 * message (a marker in the frame) and records when each socket received it.
 *
 * A minimal RFC 6455 client on raw TCP (as bench/support/ws-load-worker.ts):
 * one process holds close to its open-files limit of sockets cheaply.
 *
 * Messages from the parent (IPC):
 *   { type: "open", ... OpenRequest }     → progress on "stats"; { type: "opened", ...Stats } when every attempt ended
 *   { type: "stats" }                     → { type: "stats", ...Stats }
 *   { type: "arm", marker }               → { type: "armed" }: from now on, count frames that contain marker
 *   { type: "broadcast", withTimes? }     → { type: "broadcast", received, firstAt, lastAt, times? } (receipt times, ms on the shared clock)
 *   { type: "close" }                     → resets every socket (RST, no TIME_WAIT) and exits
 */
import { fromBinary } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { ServerFrameSchema } from "../../gen/chat/v1/frame_pb.js";
import { clientFrame, eachServerFrame } from "./ws-frames.js";
import { nowMs } from "./stats.js";

export interface OpenRequest {
  type: "open";
  /** Gateway addresses; socket k goes to destinations[k % destinations.length]. */
  destinations: Array<{ host: string; port: number }>;
  /** Source addresses this process binds its sockets to, round-robin. */
  sources: string[];
  /**
   * This process's sockets are firstSocket .. firstSocket + sockets - 1 of the
   * run; socket g belongs to user floor(g / socketsPerUser), whose token is
   * tokens[floor(g / socketsPerUser) - floor(firstSocket / socketsPerUser)].
   */
  tokens: string[];
  firstSocket: number;
  socketsPerUser: number;
  sockets: number;
  /** Handshakes (connect to hello) in flight at once. */
  concurrency: number;
  /** From connect to the HTTP 101 answer. */
  handshakeTimeoutMs: number;
  /** From the 101 answer to the hello frame. */
  helloTimeoutMs: number;
  /** Attempts again after a failed one (a client reconnecting), and the pause before each. */
  retries: number;
  retryDelayMs: number;
}

export interface WorkerStats {
  /** Attempts started (retries included). */
  attempted: number;
  /** Attempts that were retries of a failed one. */
  retried: number;
  /** Sockets that never got their hello, retries included. */
  gaveUp: number;
  /** Sockets that got their hello. */
  helloed: number;
  /** Sockets open now (with their hello). */
  open: number;
  /** Attempts that failed before their hello, by kind (every attempt, retries included). */
  failed: Record<string, number>;
  /** Sockets closed after their hello, by kind (close code or error). */
  closedAfterHello: Record<string, number>;
  /** Hellos per gateway process (hello.server_id). */
  servers: Record<string, number>;
  /** From the open request to the last attempt's end (ms); 0 while opening. */
  openMs: number;
  /** This process's resident memory (bytes). */
  rss: number;
  /** The first failures, with where and when. */
  failureSamples: FailureSample[];
}

export interface FailureSample {
  kind: string;
  socket: number;
  local: string;
  peerClosed: boolean;
  bytesAfter101: number;
  closeCode: number;
  msSinceStart: number;
  msSince101: number | undefined;
  /** Shared clock (ms). */
  at: number;
}


class IdleSocket {
  socket: net.Socket;
  upgraded = false;
  helloed = false;
  done = false;
  received = false;
  pending: Buffer = EMPTY;
  closeCode = 0;
  timer: NodeJS.Timeout | undefined;
  /** When the attempt started and when the 101 came (ms, shared clock), for failure samples. */
  startedAt = nowMs();
  upgradedAt = 0;
  /** Bytes received after the 101 answer's headers, and whether the peer sent FIN: for failure samples. */
  bytesAfter101 = 0;
  ended = false;
  local = "";

  constructor(
    readonly request: OpenRequest,
    readonly index: number,
    readonly settle: (ok: boolean) => void,
  ) {
    const r = request;
    const destination = r.destinations[index % r.destinations.length]!;
    const source = r.sources[Math.floor(index / r.destinations.length) % r.sources.length]!;
    const token = r.tokens[Math.floor((r.firstSocket + index) / r.socketsPerUser) - Math.floor(r.firstSocket / r.socketsPerUser)]!;
    this.socket = net.connect({ host: destination.host, port: destination.port, localAddress: source });
    this.socket.setNoDelay(true);
    this.timer = setTimeout(() => this.fail("handshake timeout"), r.handshakeTimeoutMs);
    this.socket.on("connect", () => {
      this.local = `${this.socket.localAddress}:${this.socket.localPort} -> ${destination.host}:${destination.port}`;
      this.socket.write(
        `GET /ws HTTP/1.1\r\nHost: ${destination.host}:${destination.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: chat.v1.proto\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      );
    });
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("end", () => (this.ended = true));
    this.socket.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? "error";
      if (!this.helloed) {
        this.fail(this.socket.connecting ? `connect ${code}` : `socket ${code} before hello`);
      } else if (this.closeCode === 0) {
        this.closeCode = -1;
        lastError = code;
      }
    });
    this.socket.on("close", () => this.onClose());
  }

  fail(kind: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    count(failed, kind);
    if (failureSamples.length < 20) {
      const at = nowMs();
      failureSamples.push({
        kind,
        socket: this.index,
        local: this.local,
        peerClosed: this.ended,
        bytesAfter101: this.bytesAfter101,
        closeCode: this.closeCode,
        msSinceStart: Math.round(at - this.startedAt),
        msSince101: this.upgradedAt ? Math.round(at - this.upgradedAt) : undefined,
        at: Math.round(at),
      });
    }
    this.socket.destroy();
    this.settle(false);
  }

  onClose(): void {
    clearTimeout(this.timer);
    if (!this.helloed) {
      this.fail(this.upgraded ? (this.closeCode > 0 ? `closed ${this.closeCode} before hello` : "closed before hello") : "closed before 101");
      return;
    }
    if (live.delete(this)) {
      count(closedAfterHello, this.closeCode > 0 ? `close ${this.closeCode}` : this.closeCode < 0 ? `error ${lastError}` : "no close frame (1006)");
    }
  }

  onData(chunk: Buffer): void {
    if (this.upgraded && !this.helloed) this.bytesAfter101 += chunk.length;
    let pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (!this.upgraded) {
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) {
        this.pending = pending;
        return;
      }
      const status = /^HTTP\/1\.1 (\d{3})/.exec(pending.subarray(0, 16).toString("latin1"))?.[1] ?? "???";
      if (status !== "101") return this.fail(`http ${status}`);
      this.upgraded = true;
      this.upgradedAt = nowMs();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.fail("hello timeout"), this.request.helloTimeoutMs);
      pending = pending.subarray(end + 4);
      this.bytesAfter101 = pending.length;
    }
    pending = eachServerFrame(pending, (opcode, payload) => {
      if (opcode === 0x2 || opcode === 0x1) this.onMessage(payload);
      else if (opcode === 0x9) this.socket.write(clientFrame(0xa, payload));
      else if (opcode === 0x8) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    });
    // Idle sockets keep no buffer of their own.
    this.pending = pending.length ? Buffer.from(pending) : EMPTY;
  }

  onMessage(payload: Buffer): void {
    if (!this.helloed) {
      let serverId = "?";
      try {
        const f = fromBinary(ServerFrameSchema, payload);
        if (f.frame.case !== "hello") return this.fail(`first frame ${f.frame.case ?? "empty"}, not hello`);
        serverId = f.frame.value.serverId;
      } catch {
        return this.fail("first frame not a ServerFrame");
      }
      this.helloed = true;
      this.done = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      helloed++;
      count(servers, serverId);
      live.add(this);
      this.settle(true);
      return;
    }
    if (marker && !this.received && payload.includes(marker)) {
      this.received = true;
      receipts.push(nowMs());
    }
  }
}

const EMPTY = Buffer.alloc(0);
const live = new Set<IdleSocket>();
const failed: Record<string, number> = {};
const closedAfterHello: Record<string, number> = {};
const servers: Record<string, number> = {};
const failureSamples: FailureSample[] = [];
let attempted = 0;
let retried = 0;
let gaveUp = 0;
let helloed = 0;
let openMs = 0;
let lastError = "";
let marker: Buffer | undefined;
let receipts: number[] = [];

function count(into: Record<string, number>, kind: string): void {
  into[kind] = (into[kind] ?? 0) + 1;
}

function stats(): WorkerStats {
  return { attempted, retried, gaveUp, helloed, open: live.size, failed, closedAfterHello, servers, openMs, rss: process.memoryUsage.rss(), failureSamples };
}

function send(message: object): void {
  process.send?.(message);
}

async function open(request: OpenRequest): Promise<void> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(request.concurrency, request.sockets) }, async () => {
      while (next < request.sockets) {
        const index = next++;
        // A failed attempt is tried again, as a client reconnects, up to `retries` times.
        for (let attempt = 0; attempt <= request.retries; attempt++) {
          if (attempt > 0) {
            retried++;
            await new Promise((r) => setTimeout(r, request.retryDelayMs));
          }
          attempted++;
          if (await new Promise<boolean>((settle) => new IdleSocket(request, index, settle))) break;
          if (attempt === request.retries) gaveUp++;
        }
      }
    }),
  );
  openMs = Math.round(performance.now() - started);
  send({ type: "opened", ...stats() });
}

process.on("message", (message: { type: string; marker?: string; withTimes?: boolean } & Omit<Partial<OpenRequest>, "type">) => {
  switch (message.type) {
    case "open":
      void open(message as unknown as OpenRequest);
      break;
    case "stats":
      send({ type: "stats", ...stats() });
      break;
    case "arm":
      marker = Buffer.from(message.marker!);
      receipts = [];
      for (const s of live) s.received = false;
      send({ type: "armed" });
      break;
    case "broadcast": {
      let first = Infinity;
      let last = 0;
      for (const t of receipts) {
        if (t < first) first = t;
        if (t > last) last = t;
      }
      send({
        type: "broadcast",
        received: receipts.length,
        firstAt: receipts.length ? first : 0,
        lastAt: last,
        ...(message.withTimes && { times: receipts }),
      });
      break;
    }
    case "close":
      // RST rather than FIN: no TIME_WAIT left behind on this host's ports.
      for (const s of live) s.socket.resetAndDestroy();
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));

/**
 * A load-generator process for the gateway benchmarks: opens many idle,
 * authenticated WebSockets (a minimal RFC 6455 client on raw TCP, so one
 * process holds thousands of sockets cheaply) and counts the frames each one
 * receives. Controlled by its parent over IPC; traffic goes to loopback only.
 *
 * Messages from the parent:
 *   { type: "open", targets: [{ host, port, token, localAddress? }], sockets }  → { type: "opened", open, failed, ms }
 *   { type: "stats" } → { type: "stats", frames, bytes, open, closed }
 *   { type: "reset" } → { type: "reset" }
 *   { type: "close" } → closes everything and exits
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { clientFrame, eachServerFrame } from "./ws-frames.js";

interface Target {
  host: string;
  port: number;
  token: string;
  localAddress?: string;
}

const sockets = new Set<net.Socket>();
let frames = 0;
let bytes = 0;
let closed = 0;

/** The answer to "stats" (the drivers import this type). */
export interface WorkerStats {
  frames: number;
  bytes: number;
  open: number;
  closed: number;
}

function send(message: object): void {
  process.send?.(message);
}

function openOne(target: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port, ...(target.localAddress && { localAddress: target.localAddress }) });
    let upgraded = false;
    let pending: Buffer = Buffer.alloc(0);
    const fail = () => {
      if (!upgraded) resolve(false);
      socket.destroy();
    };
    socket.setNoDelay(true);
    socket.once("error", fail);
    // A handshake that does not finish in time counts as failed (the server may be full).
    const timer = setTimeout(fail, 10_000);
    socket.once("close", () => clearTimeout(timer));
    socket.on("close", () => {
      if (sockets.delete(socket)) closed++;
    });
    socket.on("connect", () => {
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: chat.v1.proto\r\nAuthorization: Bearer ${target.token}\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      if (!upgraded) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!pending.subarray(0, 12).toString().includes("101")) return fail();
        upgraded = true;
        clearTimeout(timer);
        sockets.add(socket);
        resolve(true);
        pending = pending.subarray(end + 4);
      }
      // Count server frames.
      pending = eachServerFrame(pending, (opcode, payload) => {
        if (opcode === 0x2 || opcode === 0x1) {
          frames++;
          bytes += payload.length;
        } else if (opcode === 0x9) {
          socket.write(clientFrame(0xa, payload));
        }
      });
    });
  });
}

process.on("message", async (message: { type: string; targets?: Target[]; sockets?: number }) => {
  switch (message.type) {
    case "open": {
      const targets = message.targets!;
      const started = Date.now();
      let open = 0;
      let failed = 0;
      let next = 0;
      const total = message.sockets!;
      // A bounded number of handshakes in flight, like a real reconnect storm would be paced.
      await Promise.all(
        Array.from({ length: 200 }, async () => {
          while (next < total) {
            const i = next++;
            if (await openOne(targets[i % targets.length]!)) open++;
            else failed++;
          }
        }),
      );
      send({ type: "opened", open, failed, ms: Date.now() - started });
      break;
    }
    case "stats":
      send({ type: "stats", frames, bytes, open: sockets.size, closed } satisfies WorkerStats & { type: string });
      break;
    case "reset":
      frames = 0;
      bytes = 0;
      send({ type: "reset" });
      break;
    case "close":
      for (const s of sockets) s.destroy();
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));

/**
 * A lean WebSocket client (RFC 6455 over raw TCP, no extensions) so that one
 * load-generator process holds thousands of sockets: frames are handed over
 * as Buffer slices without decoding, pings are answered, fragmented messages
 * are joined, the close handshake is done. Like bench/support/ws-load-worker.ts,
 * with a per-socket API for the scenarios.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { clientFrame, eachServerFrame } from "./ws-frames.js";

export class UpgradeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface LiteSocketOptions {
  /** ws://host:port/path?query */
  url: string;
  /** Sent as Authorization: Bearer. */
  token?: string;
  /** Offered subprotocol (default chat.v1.proto). */
  protocol?: string;
  /** Handshake timeout (default 10 s). */
  timeoutMs?: number;
  /** Every data message (text or binary), as a slice valid during the call. */
  onMessage?(payload: Buffer, isText: boolean): void;
  /** Once, when the TCP connection ends; 1006 when no close frame came. */
  onClose?(code: number, reason: string): void;
}

export interface LiteSocket {
  /** Milliseconds from connect() to the 101 answer. */
  readonly upgradeMs: number;
  readonly isOpen: boolean;
  send(payload: Buffer | string): void;
  /** Close handshake (1000), at most waitMs for the server's close, then the TCP socket is destroyed. */
  close(code?: number, waitMs?: number): Promise<void>;
  destroy(): void;
}

export function openLiteSocket(options: LiteSocketOptions): Promise<LiteSocket> {
  const url = new URL(options.url);
  const host = url.hostname;
  const port = Number(url.port || 80);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    let upgraded = false;
    let settled = false;
    let pending: Buffer = Buffer.alloc(0);
    let fragments: Buffer[] = [];
    let fragmentText = false;
    let closeCode = 1006;
    let closeReason = "";
    let closeSent = false;
    let ended = false;
    let onEnded: (() => void) | undefined;
    const timer = setTimeout(() => fail(new Error(`no WebSocket upgrade within ${options.timeoutMs ?? 10_000} ms`)), options.timeoutMs ?? 10_000);

    function fail(err: Error) {
      if (!settled) {
        settled = true;
        reject(err);
      }
      socket.destroy();
    }

    const api: LiteSocket = {
      upgradeMs: 0,
      get isOpen() {
        return upgraded && !ended && !closeSent;
      },
      send(payload) {
        if (ended) return;
        const text = typeof payload === "string";
        socket.write(clientFrame(text ? 0x1 : 0x2, text ? Buffer.from(payload) : payload));
      },
      close(code = 1000, waitMs = 2000) {
        if (ended) return Promise.resolve();
        return new Promise<void>((done) => {
          const t = setTimeout(() => socket.destroy(), waitMs);
          onEnded = () => (clearTimeout(t), done());
          if (!closeSent) {
            closeSent = true;
            const body = Buffer.alloc(2);
            body.writeUInt16BE(code, 0);
            socket.write(clientFrame(0x8, body));
          }
        });
      },
      destroy() {
        socket.destroy();
      },
    };

    socket.once("error", (err) => fail(err));
    socket.on("close", () => {
      clearTimeout(timer);
      if (!settled) fail(new Error("connection closed before the upgrade"));
      if (!ended) {
        ended = true;
        if (upgraded) options.onClose?.(closeCode, closeReason);
        onEnded?.();
      }
    });
    socket.on("connect", () => {
      const path = `${url.pathname}${url.search}`;
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: ${options.protocol ?? "chat.v1.proto"}\r\n` +
          (options.token ? `Authorization: Bearer ${options.token}\r\n` : "") +
          "\r\n",
      );
    });
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      if (!upgraded) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) {
          if (pending.length > 16_384) fail(new Error("oversized upgrade answer"));
          return;
        }
        const head = pending.subarray(0, end).toString("latin1");
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        if (status !== 101) {
          const body = pending.subarray(end + 4, end + 4 + 200).toString("utf8").trim();
          return fail(new UpgradeError(status, `upgrade answered ${status}${body ? `: ${body}` : ""}`));
        }
        upgraded = true;
        settled = true;
        clearTimeout(timer);
        (api as { upgradeMs: number }).upgradeMs = performance.now() - t0;
        // A failure after the upgrade is a close, not a rejection.
        socket.removeAllListeners("error");
        socket.on("error", () => {});
        resolve(api);
        pending = pending.subarray(end + 4);
      }
      pending = eachServerFrame(pending, (opcode, payload, fin) => {
        if (opcode === 0x1 || opcode === 0x2) {
          if (fin) options.onMessage?.(payload, opcode === 0x1);
          else {
            fragments = [Buffer.from(payload)];
            fragmentText = opcode === 0x1;
          }
        } else if (opcode === 0x0) {
          fragments.push(Buffer.from(payload));
          if (fin) {
            const whole = Buffer.concat(fragments);
            fragments = [];
            options.onMessage?.(whole, fragmentText);
          }
        } else if (opcode === 0x9) {
          if (!closeSent) socket.write(clientFrame(0xa, payload));
        } else if (opcode === 0x8) {
          closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          closeReason = payload.subarray(2).toString("utf8");
          if (!closeSent) {
            closeSent = true;
            socket.write(clientFrame(0x8, payload.subarray(0, 2)));
          }
          socket.end();
        }
      });
      if (pending.length === 0) pending = Buffer.alloc(0);
    });
  });
}

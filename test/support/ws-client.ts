/** A WebSocket client for tests, speaking the chat.v1 frames in binary or JSON. */
import { create, fromBinary, fromJsonString, toBinary, toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { ClientFrameSchema, ServerFrameSchema, type ServerFrame } from "../../gen/chat/v1/frame_pb.js";

export interface ConnectOptions {
  token?: string;
  /** Send the token as ?access_token= instead of the Authorization header. */
  tokenInQuery?: boolean;
  format?: "binary" | "json";
  /** Use ?format=json instead of the subprotocol to ask for JSON. */
  formatInQuery?: boolean;
  /** Ask the gateway to hold events until the first resume frame. */
  resumeOnConnect?: boolean;
  /** The Origin header a browser would send. */
  origin?: string;
}

export class UpgradeRejected extends Error {
  constructor(readonly status: number) {
    super(`upgrade rejected with HTTP ${status}`);
  }
}

export class TestSocket {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];
  private cursor = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly format: "binary" | "json",
  ) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      const frame =
        format === "binary" || isBinary
          ? fromBinary(ServerFrameSchema, new Uint8Array(data))
          : fromJsonString(ServerFrameSchema, data.toString("utf8"));
      this.frames.push(frame);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static connect(url: string, options: ConnectOptions = {}): Promise<TestSocket> {
    const format = options.format ?? "binary";
    const u = new URL(url);
    if (options.token && options.tokenInQuery) u.searchParams.set("access_token", options.token);
    if (format === "json" && options.formatInQuery) u.searchParams.set("format", "json");
    if (options.resumeOnConnect) u.searchParams.set("resume", "1");
    const protocols = format === "json" && !options.formatInQuery ? ["chat.v1.json"] : ["chat.v1.proto"];
    const headers: Record<string, string> = {};
    if (options.token && !options.tokenInQuery) headers.authorization = `Bearer ${options.token}`;
    const ws = new WebSocket(u, protocols, { headers, ...(options.origin !== undefined && { origin: options.origin }) });
    const socket = new TestSocket(ws, format);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(socket));
      ws.once("unexpected-response", (_req, res) => {
        reject(new UpgradeRejected(res.statusCode ?? 0));
        res.resume();
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }

  send(frame: MessageInitShape<typeof ClientFrameSchema>): void {
    const f = create(ClientFrameSchema, frame);
    if (this.format === "binary") this.ws.send(toBinary(ClientFrameSchema, f));
    else this.ws.send(toJsonString(ClientFrameSchema, f));
  }

  /** Waits for the next frame (after those already taken) that matches; returns it. */
  async next(match: (f: ServerFrame) => boolean = () => true, timeoutMs = 5000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const f = this.frames[this.cursor++]!;
        if (match(f)) return f;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${this.frames.map((f) => f.frame.case).join(",")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  /** Waits until `count` frames matching have arrived in total (from the start); returns them. */
  async collect(match: (f: ServerFrame) => boolean, count: number, timeoutMs = 5000): Promise<ServerFrame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.frames.filter(match);
      if (got.length >= count) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`got ${got.length} of ${count} matching frames within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  /** The hello frame; a generous timeout, since a loaded CI machine may start sessions slowly. */
  async hello() {
    const closedFirst = this.closed.then(({ code, reason }) => {
      throw new Error(`socket closed (${code} ${reason}) before its hello`);
    });
    const f = await Promise.race([this.next((x) => x.frame.case === "hello", 15_000), closedFirst]);
    closedFirst.catch(() => {});
    if (f.frame.case !== "hello") throw new Error("unreachable");
    return f.frame.value;
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}

/** Ids of the messages in messagePosted event frames, in arrival order (optionally of one channel). */
export function postedIds(frames: ServerFrame[], channelId?: bigint): bigint[] {
  const ids: bigint[] = [];
  for (const f of frames) {
    if (f.frame.case !== "event") continue;
    const e = f.frame.value;
    if (e.payload.case !== "messagePosted" || !e.payload.value.message) continue;
    if (channelId !== undefined && e.channelId !== channelId) continue;
    ids.push(e.payload.value.message.id);
  }
  return ids;
}

/** The highest change seq among the frames' events of the channel (0n for none): the cursor to resume from. */
export function lastSeqOf(frames: ServerFrame[], channelId: bigint): bigint {
  let seq = 0n;
  for (const f of frames) {
    if (f.frame.case === "event" && f.frame.value.channelId === channelId && f.frame.value.seq > seq) seq = f.frame.value.seq;
  }
  return seq;
}

export const isEvent = (kind?: string, channelId?: bigint) => (f: ServerFrame) =>
  f.frame.case === "event" &&
  (kind === undefined || f.frame.value.payload.case === kind) &&
  (channelId === undefined || f.frame.value.channelId === channelId);

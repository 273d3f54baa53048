/**
 * SIGTERM's drain, on the real program: it never crashes, every request and
 * socket post that started before it gets its answer before its connection
 * closes, and long streams end at once with a status that says "reconnect".
 */
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { EventService } from "../../gen/chat/v1/event_service_pb.js";
import { MessageOrder, MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { TestSocket } from "../support/ws-client.js";

const ADMIN = "drain-admin-token-0123456789";
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const withToken = (token: string) => [(next: Parameters<import("@connectrpc/connect").Interceptor>[0]) => (req: Parameters<typeof next>[0]) => (req.header.set("authorization", `Bearer ${token}`), next(req))];
const connect = (url: string, token: string, httpVersion: "1.1" | "2") => createConnectTransport({ baseUrl: url, httpVersion, interceptors: withToken(token) });
const clients = (transport: Transport) => ({
  users: createClient(UserService, transport),
  channels: createClient(ChannelService, transport),
  messages: createClient(MessageService, transport),
  events: createClient(EventService, transport),
});

async function start(env: Record<string, string> = {}): Promise<{ proc: ChatProcess; dataDir: string; env: Record<string, string> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-drain-"));
  dirs.push(dataDir);
  const all = { CHAT_DATA_DIR: dataDir, CHAT_ADMIN_TOKEN: ADMIN, CHAT_SHUTDOWN_GRACE_MS: "8000", ...env };
  return { proc: await startChatProcess(all), dataDir, env: all };
}

async function userIn(url: string): Promise<{ token: string; channelId: bigint }> {
  const admin = clients(connect(url, ADMIN, "1.1"));
  const { user } = await admin.users.createUser({ name: "Drain", email: `drain-${Date.now()}-${Math.random()}@example.com` });
  const { token } = await admin.users.issueToken({ userId: user!.id });
  const channelId = (await clients(connect(url, token, "1.1")).channels.createChannel({ name: `drain-${Date.now()}` })).channel!.id;
  return { token, channelId };
}

/** Every message text of the channel, oldest first. */
async function storedTexts(url: string, token: string, channelId: bigint): Promise<string[]> {
  const me = clients(connect(url, token, "1.1"));
  const stored: string[] = [];
  let after = 0n;
  for (;;) {
    const page = await me.messages.listMessages({ channelId, after, limit: 200, order: MessageOrder.OLDEST_FIRST });
    stored.push(...page.messages.map((m) => m.text));
    if (!page.hasMore) return stored;
    after = page.nextCursor;
  }
}

describe("the drain on SIGTERM", () => {
  it("never crashes on a request that completes, with a health check pipelined behind it, while draining", async () => {
    // The race window: the body's end (and the pipelined GET) arrives at different moments of the drain.
    for (const delayMs of [0, 5, 20, 50, 100, 200]) {
      const { proc } = await start();
      const { port } = new URL(proc.url);
      const socket = net.connect(Number(port), "127.0.0.1");
      await new Promise((r) => socket.once("connect", r));
      let received = "";
      socket.on("data", (d) => (received += d));
      socket.write("POST /chat.v1.UserService/ListUsers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        `Authorization: Bearer ${ADMIN}\r\nContent-Length: 2\r\n\r\n{`);
      await new Promise((r) => setTimeout(r, 50));
      proc.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, delayMs));
      socket.write("}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      const code = await proc.exited;
      socket.destroy();
      expect(code, `delay ${delayMs} ms: ${proc.stderr()} ${JSON.stringify(proc.logs.filter((l) => Number(l.level) >= 50))}`).toBe(0);
      expect(received, `delay ${delayMs} ms`).toMatch(/^HTTP\/1\.1 200/);
    }
  }, 120_000);

  it("answers every Connect post that started before SIGTERM (HTTP/1.1 and HTTP/2), and stores none it did not answer", async () => {
    const { proc, env } = await start();
    const { token, channelId } = await userIn(proc.url);
    const answered = new Set<string>();
    const failed = new Map<string, string>();
    let sigterm = false;
    const posters = Array.from({ length: 16 }, async (_, w) => {
      const me = clients(connect(proc.url, token, w % 2 === 0 ? "1.1" : "2"));
      for (let i = 0; ; i++) {
        const key = `w${w}-${i}`;
        try {
          await me.messages.postMessage({ channelId, text: key, clientMsgId: key });
          answered.add(key);
        } catch (err) {
          failed.set(key, ConnectError.from(err).rawMessage);
          if (sigterm) return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 700));
    sigterm = true;
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await Promise.all(posters);

    const again = await startChatProcess(env);
    try {
      const stored = await storedTexts(again.url, token, channelId);
      expect(answered.size).toBeGreaterThan(50);
      const storedButUnanswered = stored.filter((key) => !answered.has(key)).map((key) => `${key}: ${failed.get(key)}`);
      expect(storedButUnanswered).toEqual([]);
      for (const key of answered) expect(stored).toContain(key);
    } finally {
      again.child.kill("SIGTERM");
      await again.exited;
    }
  }, 120_000);

  it("acks every socket post that started before SIGTERM before closing the socket with 1001", async () => {
    const { proc, env } = await start({ CHAT_GATEWAY_POSTS_PER_SECOND: "100000", CHAT_GATEWAY_POST_BURST: "100000" });
    const { token, channelId } = await userIn(proc.url);
    const sockets = await Promise.all(Array.from({ length: 4 }, () => TestSocket.connect(proc.gatewayUrls[0]!, { token })));
    await Promise.all(sockets.map((s) => s.hello()));
    const sent: string[] = [];
    let n = 0;
    // Several posts in flight on every socket at any moment.
    const timer = setInterval(() => {
      for (const s of sockets) {
        for (let i = 0; i < 5; i++) {
          const key = `s${n++}`;
          sent.push(key);
          if (s.ws.readyState === s.ws.OPEN) s.send({ frame: { case: "post", value: { channelId, text: key, clientMsgId: key } } });
        }
      }
    }, 5);
    await new Promise((r) => setTimeout(r, 300));
    proc.child.kill("SIGTERM");
    const closes = await Promise.all(sockets.map((s) => s.closed));
    clearInterval(timer);
    expect(await proc.exited).toBe(0);
    expect(closes.map((c) => c.code)).toEqual([1001, 1001, 1001, 1001]);
    const acked = new Set(
      sockets.flatMap((s) => s.frames.filter((f) => f.frame.case === "ack").map((f) => (f.frame.case === "ack" ? f.frame.value.clientMsgId : ""))),
    );

    const again = await startChatProcess(env);
    try {
      const stored = await storedTexts(again.url, token, channelId);
      expect(stored.length).toBeGreaterThan(10);
      expect(stored.filter((key) => !acked.has(key))).toEqual([]);
    } finally {
      again.child.kill("SIGTERM");
      await again.exited;
    }
  }, 120_000);

  it("ends a stream of posts at once with UNAVAILABLE after answering what it took", async () => {
    const { proc } = await start({ CHAT_SHUTDOWN_GRACE_MS: "20000" });
    const { token, channelId } = await userIn(proc.url);
    const bot = clients(createGrpcTransport({ baseUrl: proc.url, interceptors: withToken(token) }));
    let release!: () => void;
    const idle = new Promise<void>((r) => (release = r));
    async function* posts() {
      yield { channelId, text: "before the drain", clientMsgId: "sp-1" };
      await idle; // the bot has nothing more to say for now
    }
    const answers: string[] = [];
    const ended = (async () => {
      try {
        for await (const a of bot.messages.streamPostMessages(posts())) answers.push(a.clientMsgId);
        return "ended without a status";
      } catch (err) {
        const e = ConnectError.from(err);
        return `${Code[e.code]}: ${e.rawMessage}`;
      }
    })();
    while (answers.length === 0) await new Promise((r) => setTimeout(r, 20));
    const sentAt = Date.now();
    proc.child.kill("SIGTERM");
    expect(await ended).toMatch(/^Unavailable: server shutting down/);
    release();
    expect(answers).toEqual(["sp-1"]);
    expect(await proc.exited).toBe(0);
    expect(Date.now() - sentAt).toBeLessThan(5000);
  }, 60_000);

  it("ends event streams at once with UNAVAILABLE, instead of holding the drain for the grace period", async () => {
    const { proc } = await start({ CHAT_SHUTDOWN_GRACE_MS: "20000" });
    const { token } = await userIn(proc.url);
    const bot = clients(createGrpcTransport({ baseUrl: proc.url, interceptors: withToken(token) }));
    const stream = bot.events.subscribe({});
    const ended = (async () => {
      try {
        for await (const _ of stream) void _;
        return "ended without a status";
      } catch (err) {
        const e = ConnectError.from(err);
        return `${Code[e.code]}: ${e.rawMessage}`;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const sentAt = Date.now();
    proc.child.kill("SIGTERM");
    expect(await ended).toMatch(/^Unavailable: server shutting down/);
    expect(await proc.exited).toBe(0);
    expect(Date.now() - sentAt).toBeLessThan(5000);
  }, 60_000);
});

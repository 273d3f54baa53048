/** The real program: configuration errors, health and metrics endpoints, and a graceful SIGTERM. */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { MessageOrder, MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { runChat, startChatProcess } from "../../infra/harness/chat-process.js";
import { TestSocket } from "../support/ws-client.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "chat-life-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const ADMIN = "lifecycle-admin-token-123456";

function clients(url: string, token: string) {
  const auth: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, interceptors: [auth] });
  return {
    users: createClient(UserService, transport),
    channels: createClient(ChannelService, transport),
    messages: createClient(MessageService, transport),
  };
}

/** Every message id stored in the channel, read oldest first to the end. */
async function storedIds(c: ReturnType<typeof clients>, channelId: bigint): Promise<Set<bigint>> {
  const stored = new Set<bigint>();
  let after = 0n;
  for (;;) {
    const page = await c.messages.listMessages({ channelId, after, limit: 200, order: MessageOrder.OLDEST_FIRST });
    page.messages.forEach((m) => stored.add(m.id));
    if (!page.hasMore) return stored;
    after = page.nextCursor;
  }
}

describe("the chat program", () => {
  it("refuses to start on bad configuration, naming each bad variable", async () => {
    const { code, stderr } = await runChat({ CHAT_API_PORT: "99999", CHAT_LOG_LEVEL: "chatty", CHAT_DATA_DIR: dataDir });
    expect(code).toBe(2);
    expect(stderr).toMatch(/CHAT_API_PORT: must be at most 65535/);
    expect(stderr).toMatch(/CHAT_LOG_LEVEL: expected one of/);
  });

  it("refuses to start the gateway on the pure-JS fallback of uWebSockets.js", async () => {
    const { code, stderr } = await runChat({ CHAT_DATA_DIR: dataDir, CHAT_ADMIN_TOKEN: ADMIN, CHAT_API_PORT: "0", CHAT_GATEWAY_PORT: "0", UWS_USE_FALLBACK: "1" });
    expect(code).toBe(2);
    expect(stderr).toMatch(/UWS_USE_FALLBACK: makes uWebSockets.js run its slow pure-JS fallback/);
  });

  it("ends every start-up failure with one clear log line and exit 1 within seconds", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = String((blocker.address() as net.AddressInfo).port);
    try {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ CHAT_DATA_DIR: "/proc/chat-data" }, /start-up failed: cannot create the data folder \(CHAT_DATA_DIR\) \/proc\/chat-data/],
        [{ CHAT_DATA_DIR: dataDir, CHAT_API_PORT: taken }, new RegExp(`start-up failed: the API could not listen on 127.0.0.1:${taken}: the address is already in use`)],
        [{ CHAT_DATA_DIR: dataDir, CHAT_API_PORT: "0", CHAT_GATEWAY_PORT: taken }, new RegExp(`start-up failed: the gateway could not listen on 127.0.0.1:${taken}`)],
        [{ CHAT_DATA_DIR: dataDir, CHAT_STORE: "cassandra", CHAT_CASSANDRA_CONTACT_POINTS: "127.0.0.1:1" }, /start-up failed: cannot open the Cassandra store at 127.0.0.1:1: .*ECONNREFUSED/],
        [{ CHAT_DATA_DIR: dataDir, CHAT_BUS: "nats", CHAT_NATS_URL: "nats://127.0.0.1:1" }, /start-up failed: cannot connect to NATS at nats:\/\/127.0.0.1:1/],
      ];
      for (const [env, expected] of cases) {
        const started = Date.now();
        const { code, stdout, stderr } = await runChat({ CHAT_ADMIN_TOKEN: ADMIN, ...env });
        expect(code, `${JSON.stringify(env)}: ${stdout}${stderr}`).toBe(1);
        expect(Date.now() - started).toBeLessThan(8_000);
        expect(stderr).toBe("");
        const fatal = stdout.split("\n").filter((line) => line.includes('"level":60'));
        expect(fatal, stdout).toHaveLength(1);
        const line = JSON.parse(fatal[0]!) as { msg: string; err?: unknown };
        expect(line.msg).toMatch(expected);
        expect(line.err).toBeUndefined();
      }
    } finally {
      blocker.close();
    }
  });

  it("runs the API and the gateway together in one process", async () => {
    const proc = await startChatProcess({ CHAT_DATA_DIR: dataDir, CHAT_ADMIN_TOKEN: ADMIN, CHAT_GATEWAY_PORT: "0" });
    try {
      const admin = clients(proc.url, ADMIN);
      const { user } = await admin.users.createUser({ name: "Both", email: `both-${Date.now()}@example.com` });
      const { token } = await admin.users.issueToken({ userId: user!.id });
      const socket = await TestSocket.connect(proc.gatewayUrls[0]!, { token });
      expect((await socket.hello()).userId).toBe(user!.id);
      expect(proc.logs.find((l) => l.msg === "chat started")?.pid).toBe(proc.child.pid);
      await socket.close();
    } finally {
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    }
  });

  it("serves /healthz and /metrics, drains on SIGTERM without losing an acknowledged post, and restarts with its data", async () => {
    const env = { CHAT_DATA_DIR: dataDir, CHAT_ADMIN_TOKEN: ADMIN, CHAT_SHUTDOWN_GRACE_MS: "5000" };
    const first = await startChatProcess(env);
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    const admin = clients(first.url, ADMIN);
    const { user } = await admin.users.createUser({ name: "Lifecycle", email: `life-${Date.now()}@example.com` });
    const { token } = await admin.users.issueToken({ userId: user!.id });
    const me = clients(first.url, token);
    const { channel } = await me.channels.createChannel({ name: `life-${Date.now()}` });

    const metrics = await (await fetch(`${first.url}/metrics`)).text();
    expect(metrics).toMatch(/chat_rpc_requests_total\{method="chat.v1.ChannelService\/CreateChannel",code="ok"\} 1/);
    expect(metrics).toMatch(/chat_process_resident_memory_bytes/);

    // Keep posting from several workers; stop the server in the middle.
    const acknowledged: bigint[] = [];
    let failures = 0;
    let stop = false;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const { message } = await me.messages.postMessage({ channelId: channel!.id, text: `w${w}-${i}` });
          acknowledged.push(message!.id);
        } catch {
          failures++;
          stop = true;
        }
      }
    });
    while (acknowledged.length < 200) await new Promise((r) => setTimeout(r, 5));
    const during = await (await fetch(`${first.url}/metrics`)).text();
    const writes = Number(/chat_message_write_seconds_count\{delivery="persisted"\} (\d+)/.exec(during)?.[1] ?? 0);
    expect(writes).toBeGreaterThanOrEqual(200);
    first.child.kill("SIGTERM");
    const code = await first.exited;
    stop = true;
    await Promise.all(workers);
    expect(code).toBe(0);
    expect(first.logs.some((l) => l.msg === "stopped")).toBe(true);

    const second = await startChatProcess(env);
    try {
      const stored = await storedIds(clients(second.url, token), channel!.id);
      const lost = acknowledged.filter((id) => !stored.has(id));
      expect(lost).toEqual([]);
      expect(acknowledged.length).toBeGreaterThanOrEqual(200);
    } finally {
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);
    }
  });

  it("keeps every acknowledged post when the process is killed (SIGKILL) mid-write", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "chat-kill-"));
    const env = { CHAT_DATA_DIR: dir, CHAT_ADMIN_TOKEN: ADMIN };
    try {
      const first = await startChatProcess(env);
      const admin = clients(first.url, ADMIN);
      const { user } = await admin.users.createUser({ name: "Crash", email: `crash-${Date.now()}@example.com` });
      const { token } = await admin.users.issueToken({ userId: user!.id });
      const me = clients(first.url, token);
      const { channel } = await me.channels.createChannel({ name: `crash-${Date.now()}` });
      const acknowledged: bigint[] = [];
      let stop = false;
      const workers = Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          try {
            const { message } = await me.messages.postMessage({ channelId: channel!.id, text: `k${w}-${i}`, clientMsgId: `k${w}-${i}` });
            acknowledged.push(message!.id);
          } catch {
            stop = true;
          }
        }
      });
      while (acknowledged.length < 500) await new Promise((r) => setTimeout(r, 2));
      first.child.kill("SIGKILL");
      await first.exited;
      stop = true;
      await Promise.all(workers);

      const second = await startChatProcess(env);
      try {
        const stored = await storedIds(clients(second.url, token), channel!.id);
        expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
      } finally {
        second.child.kill("SIGTERM");
        await second.exited;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

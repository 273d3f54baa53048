/**
 * A Cassandra outage under posting, with a Cassandra node of this test's own
 * killed and started again: the API process rides it out (it never exits),
 * answers posts with the retryable UNAVAILABLE (never INTERNAL) while the
 * store is away, reports not-ready on /healthz meanwhile, and once the store
 * is back every acknowledged post is in history exactly once.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { MessageOrder, MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { startCassandra, type RunningCassandra } from "../../infra/harness/cassandra.js";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";

const ADMIN = "outage-admin-token-0123456789";
let cassandra: RunningCassandra;
let api: ChatProcess;

const clientsOf = (url: string, token: string) => {
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
  });
  return { users: createClient(UserService, transport), channels: createClient(ChannelService, transport), messages: createClient(MessageService, transport) };
};

const healthz = async () => (await fetch(`${api.url}/healthz`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined))?.status;

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  cassandra = await startCassandra({ heapMb: 256 });
  api = await startChatProcess(
    {
      CHAT_ROLE: "api",
      CHAT_ADMIN_TOKEN: ADMIN,
      CHAT_JWT_SECRET: "outage-jwt-secret-0123456789-0123456789",
      CHAT_STORE: "cassandra",
      CHAT_CASSANDRA_CONTACT_POINTS: cassandra.contactPoint,
      CHAT_CASSANDRA_KEYSPACE: "outage",
      CHAT_CASSANDRA_REQUEST_TIMEOUT_MS: "1500",
      CHAT_CASSANDRA_CONNECT_TIMEOUT_MS: "1000",
      // A lease short enough that this outage outlasts it: minting must suspend, not the process end.
      CHAT_NODE_LEASE_TTL_SECONDS: "6",
      CHAT_NODE_LEASE_RENEW_SECONDS: "1",
      CHAT_DATA_DIR: `/tmp/chat-outage-${process.pid}`,
    },
    [],
  );
}, 180_000);

afterAll(async () => {
  api?.child.kill("SIGKILL");
  await cassandra?.stop();
});

describe("a Cassandra outage under posting", () => {
  it("is ridden out: UNAVAILABLE while away, not ready meanwhile, every acknowledged post kept once", async () => {
    const admin = clientsOf(api.url, ADMIN);
    const { user } = await admin.users.createUser({ name: "Poster", email: `poster-${Date.now()}@example.com` });
    const { token } = await admin.users.issueToken({ userId: user!.id });
    const me = clientsOf(api.url, token);
    const channelId = (await me.channels.createChannel({ name: `outage-${Date.now()}` })).channel!.id;
    expect(await healthz()).toBe(200);

    const acknowledged = new Map<string, bigint>();
    const codes = new Map<string, number>();
    let posting = true;
    const poster = (async () => {
      for (let i = 0; posting; i++) {
        const key = `post-${i}`;
        // Retried with the same key until acknowledged, as a client does with a retryable code.
        for (;;) {
          try {
            const { message } = await me.messages.postMessage({ channelId, text: key, clientMsgId: key }, { timeoutMs: 5000 });
            acknowledged.set(key, message!.id);
            break;
          } catch (err) {
            const code = Code[ConnectError.from(err).code]!;
            codes.set(code, (codes.get(code) ?? 0) + 1);
            if (!posting) return;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    await until("posts acknowledged before the outage", async () => acknowledged.size >= 20, 20_000);
    await cassandra.kill();
    await until("not ready while the store is away", async () => (await healthz()) === 503, 15_000);
    // Longer than the lease's lifetime: minting suspends.
    await new Promise((r) => setTimeout(r, 8000));
    const duringOutage = acknowledged.size;
    expect(api.child.exitCode).toBeNull();
    await cassandra.start();
    await until("ready again", async () => (await healthz()) === 200, 60_000);
    await until("posting again", async () => acknowledged.size >= duringOutage + 20, 30_000);
    posting = false;
    await poster;

    expect(api.child.exitCode).toBeNull();
    expect(codes.get("Unavailable") ?? 0).toBeGreaterThan(0);
    const errors = api.logs.filter((l) => Number(l.level) >= 50);
    expect([...codes.keys()].filter((c) => c !== "Unavailable" && c !== "DeadlineExceeded"), JSON.stringify(errors).slice(0, 3000)).toEqual([]);

    const stored: string[] = [];
    const storedIds: bigint[] = [];
    let after = 0n;
    for (;;) {
      const page = await me.messages.listMessages({ channelId, after, limit: 200, order: MessageOrder.OLDEST_FIRST });
      stored.push(...page.messages.map((m) => m.text));
      storedIds.push(...page.messages.map((m) => m.id));
      if (!page.hasMore) break;
      after = page.nextCursor;
    }
    const acks = [...acknowledged.entries()];
    for (const [key, id] of acks) {
      const i = acks.findIndex(([k]) => k === key);
      expect(stored.filter((t) => t === key), `${key} acknowledged as ${id}, stored: ${storedIds.includes(id)}; neighbours ${JSON.stringify(acks.slice(Math.max(0, i - 2), i + 3).map(([k, v]) => [k, String(v)]))}; posts stored ${stored.length} of ${acks.length}; ${JSON.stringify(api.logs.filter((l) => Number(l.level) >= 40).slice(0, 5)).slice(0, 1500)}`).toHaveLength(1);
    }
    expect(stored.length).toBe(new Set(stored).size);
  }, 240_000);
});

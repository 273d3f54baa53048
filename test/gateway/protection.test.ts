/** Malformed, oversized and flooding clients, slow consumers, connection caps, expiring tokens. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/error_pb.js";
import { startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { isEvent, postedIds, TestSocket, UpgradeRejected } from "../support/ws-client.js";

let t: TestApi;
let a: TestUser, b: TestUser;
let channel: bigint;

beforeAll(async () => {
  t = await startTestApi({
    CHAT_GATEWAY_MAX_FRAME_BYTES: "4096",
    CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES: "524288",
    CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: "3",
    CHAT_GATEWAY_POSTS_PER_SECOND: "5",
    CHAT_GATEWAY_POST_BURST: "10",
    CHAT_CORS_ORIGINS: "https://chat.example.com",
  });
  a = await t.newUser("A");
  b = await t.newUser("B");
  channel = (await a.channels.createChannel({ name: `guarded-${Date.now()}` })).channel!.id;
  await b.channels.joinChannel({ channelId: channel });
});
afterAll(() => t.stop());

describe("gateway protection", () => {
  it("refuses browser upgrades from origins not in CHAT_CORS_ORIGINS, and lets others and non-browsers in", async () => {
    const refused = await TestSocket.connect(t.wsUrl, { token: a.token, origin: "https://evil.example.net" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UpgradeRejected);
    expect((refused as UpgradeRejected).status).toBe(403);
    for (const origin of ["https://chat.example.com", undefined]) {
      const s = await TestSocket.connect(t.wsUrl, { token: a.token, ...(origin !== undefined && { origin }) });
      await s.hello();
      await s.close();
    }
  });

  it("answers a malformed frame with an error frame, and closes with 1008 after too many", async () => {
    const s = await TestSocket.connect(t.wsUrl, { token: a.token });
    await s.hello();
    s.ws.send(Buffer.from([0xff, 0xff, 0xff, 0x07]));
    const error = await s.next((f) => f.frame.case === "error");
    expect(error.frame.case === "error" && error.frame.value.error?.code).toBe(ErrorCode.INVALID_ARGUMENT);
    s.ws.send("{ not json");
    s.ws.send(Buffer.alloc(0));
    await s.collect((f) => f.frame.case === "error", 3);
    // Still serving this socket after garbage.
    s.send({ frame: { case: "ping", value: { nonce: 7n } } });
    await s.next((f) => f.frame.case === "pong");
    for (let i = 0; i < 10; i++) s.ws.send(Buffer.from([0x0a, 0xff]));
    expect((await s.closed).code).toBe(1008);
  });

  it("survives seeded random frames in both formats: every socket ends with 1008 or 1009, and the gateway keeps serving", async () => {
    // A small LCG, so a failure replays with the same frames.
    let seed = 20261128;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)));
    const jsonJunk = [
      () => bytes(rand(200)).toString("latin1"),
      () => JSON.stringify({ post: { channelId: "9".repeat(1 + rand(40)), text: "x", clientMsgId: "k" } }),
      () => JSON.stringify({ post: { channelId: String(channel), text: "\ud800" } }),
      () => JSON.stringify({ resume: { cursors: [{ channelId: "-5", lastSeenId: "abc" }] } }),
      () => JSON.stringify({ ping: { nonce: "18446744073709551616" } }),
      () => JSON.stringify({ post: null, ping: {} }),
      () => "[".repeat(3000),
    ];
    const c = await t.newUser("Fuzz");
    for (let round = 0; round < 6; round++) {
      const format = round % 2 === 0 ? "binary" : "json";
      const s = await TestSocket.connect(t.wsUrl, { token: c.token, format });
      await s.hello();
      for (let i = 0; i < 40; i++) {
        if (format === "binary") s.ws.send(bytes(rand(300)));
        else s.ws.send(jsonJunk[rand(jsonJunk.length)]!());
      }
      const { code } = await s.closed;
      expect([1008, 1009]).toContain(code);
    }
    // The gateway still serves: a fresh socket gets its hello and a post's event.
    const s = await TestSocket.connect(t.wsUrl, { token: b.token });
    await s.hello();
    const posted = await a.messages.postMessage({ channelId: channel, text: "after the fuzz" });
    expect(postedIds(await s.collect(isEvent("messagePosted", channel), 1), channel)).toEqual([posted.message!.id]);
    await s.close();
  });

  it("closes with 1009 on a frame over max_frame_bytes", async () => {
    const s = await TestSocket.connect(t.wsUrl, { token: a.token });
    expect((await s.hello()).maxFrameBytes).toBe(4096);
    s.send({ frame: { case: "post", value: { channelId: channel, text: "x".repeat(5000) } } });
    expect((await s.closed).code).toBe(1009);
  });

  it("rate-limits posts per connection with RESOURCE_EXHAUSTED, and keeps the connection", async () => {
    const s = await TestSocket.connect(t.wsUrl, { token: a.token });
    await s.hello();
    for (let i = 0; i < 30; i++) s.send({ frame: { case: "post", value: { channelId: channel, text: `flood ${i}`, clientMsgId: `fl${i}` } } });
    const answers = await s.collect((f) => f.frame.case === "ack" || f.frame.case === "error", 30);
    const limited = answers.filter((f) => f.frame.case === "error" && f.frame.value.error?.code === ErrorCode.RESOURCE_EXHAUSTED);
    const acked = answers.filter((f) => f.frame.case === "ack");
    expect(acked.length).toBeGreaterThanOrEqual(10);
    expect(acked.length).toBeLessThan(15);
    expect(limited.length).toBe(30 - acked.length);
    s.send({ frame: { case: "ping", value: { nonce: 1n } } });
    await s.next((f) => f.frame.case === "pong");
    await s.close();
  });

  it("cuts off a consumer that stops reading, while the others keep receiving", async () => {
    const slow = await TestSocket.connect(t.wsUrl, { token: b.token });
    const fine = await TestSocket.connect(t.wsUrl, { token: b.token });
    await slow.hello();
    await fine.hello();
    // Stop reading from the slow socket's TCP connection.
    (slow.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
    // Far more than the kernel's socket buffers absorb, so backpressure builds in the gateway.
    const big = "y".repeat(38_000);
    const ids: bigint[] = [];
    // One post at a time: the backlog grows steadily, as with a busy channel.
    for (let i = 0; i < 400; i++) ids.push((await a.messages.postMessage({ channelId: channel, text: big })).message!.id);
    const received = await fine.collect(isEvent("messagePosted", channel), 400, 20_000);
    expect(postedIds(received, channel)).toEqual(ids);
    (slow.ws as unknown as { _socket: import("node:net").Socket })._socket.resume();
    const { code } = await slow.closed;
    expect(code).toBe(4008);
    await fine.close();
  });

  it("caps connections per user with HTTP 429", async () => {
    const c = await t.newUser("C");
    const sockets = [];
    for (let i = 0; i < 3; i++) sockets.push(await TestSocket.connect(t.wsUrl, { token: c.token }));
    const err = await TestSocket.connect(t.wsUrl, { token: c.token }).catch((e: unknown) => e);
    expect((err as UpgradeRejected).status).toBe(429);
    await sockets[0]!.close();
    await new Promise((r) => setTimeout(r, 50));
    sockets.push(await TestSocket.connect(t.wsUrl, { token: c.token }));
    for (const s of sockets.slice(1)) await s.close();
  });

  it("closes with 4001 when the token expires", async () => {
    const { token } = await t.admin.users.issueToken({ userId: a.id, ttlSeconds: 2 });
    const s = await TestSocket.connect(t.wsUrl, { token });
    await s.hello();
    const { code } = await s.closed;
    expect(code).toBe(4001);
  });

  it("caps connections per process with HTTP 503, below the open-files limit", async () => {
    const small = await startTestApi({ CHAT_GATEWAY_MAX_CONNECTIONS: "2" });
    try {
      const u = await small.newUser("U");
      const first = await TestSocket.connect(small.wsUrl, { token: u.token });
      const second = await TestSocket.connect(small.wsUrl, { token: u.token });
      const err = await TestSocket.connect(small.wsUrl, { token: u.token }).catch((e: unknown) => e);
      expect((err as UpgradeRejected).status).toBe(503);
      await first.close();
      await new Promise((r) => setTimeout(r, 50));
      const third = await TestSocket.connect(small.wsUrl, { token: u.token });
      await Promise.all([second.close(), third.close()]);
    } finally {
      await small.stop();
    }
  });
});

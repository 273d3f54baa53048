/** Who receives what over the WebSocket, live membership changes, posting over the socket, delivery modes. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/error_pb.js";
import { DeliveryMode, startTestApi, Visibility, type TestApi, type TestUser } from "../support/api.js";
import { isEvent, postedIds, TestSocket, UpgradeRejected } from "../support/ws-client.js";

let t: TestApi;
let a: TestUser, b: TestUser, c: TestUser;
let pub: bigint, priv: bigint, dm: bigint;
const open: TestSocket[] = [];

async function connect(u: TestUser, options: Parameters<typeof TestSocket.connect>[1] = {}) {
  const s = await TestSocket.connect(t.wsUrl, { token: u.token, ...options });
  open.push(s);
  await s.hello();
  return s;
}

beforeAll(async () => {
  t = await startTestApi();
  [a, b, c] = [await t.newUser("A"), await t.newUser("B"), await t.newUser("C")];
  const stamp = Date.now().toString(36);
  pub = (await a.channels.createChannel({ name: `pub-${stamp}` })).channel!.id;
  priv = (await a.channels.createChannel({ name: `priv-${stamp}`, visibility: Visibility.PRIVATE })).channel!.id;
  await b.channels.joinChannel({ channelId: pub });
  await a.channels.addMember({ channelId: priv, userId: c.id });
  dm = (await a.channels.openDirectMessage({ userId: b.id })).channel!.id;
});
afterAll(async () => {
  for (const s of open) s.ws.terminate();
  await t.stop();
});

const settle = () => new Promise((r) => setTimeout(r, 150));

describe("authentication at upgrade", () => {
  it("answers 401 without a token, with a forged one and with an expired one", async () => {
    const expect401 = async (options: Parameters<typeof TestSocket.connect>[1]) => {
      const err = await TestSocket.connect(t.wsUrl, options).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UpgradeRejected);
      expect((err as UpgradeRejected).status).toBe(401);
    };
    await expect401({});
    await expect401({ token: "forged.token.value" });
    await expect401({ token: a.token.slice(0, -4) + "AAAA" });
    const { token } = await t.admin.users.issueToken({ userId: a.id, ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    await expect401({ token });
  });

  it("refuses the admin credential (403) and accepts ?access_token= for browsers", async () => {
    const err = await TestSocket.connect(t.wsUrl, { token: "test-admin-token-0123456789" }).catch((e: unknown) => e);
    expect((err as UpgradeRejected).status).toBe(403);
    const s = await connect(a, { tokenInQuery: true });
    expect(s.frames[0]?.frame.case === "hello" && s.frames[0].frame.value.userId).toBe(a.id);
  });
});

describe("hello and formats", () => {
  it("greets with the user, a session id, the server time and the user's channels", async () => {
    const s = await TestSocket.connect(t.wsUrl, { token: a.token });
    open.push(s);
    const hello = await s.hello();
    expect(hello.userId).toBe(a.id);
    expect(hello.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(Number(hello.serverTime!.seconds) * 1000 - Date.now())).toBeLessThan(5000);
    expect([...hello.channelIds].sort()).toEqual([pub, priv, dm].sort());
    expect(s.ws.protocol).toBe("chat.v1.proto");
  });

  it.each([false, true])("speaks canonical JSON in text frames (format in query: %s)", async (formatInQuery) => {
    const s = await connect(b, { format: "json", formatInQuery });
    if (!formatInQuery) expect(s.ws.protocol).toBe("chat.v1.json");
    const raw = new Promise<string>((resolve) => s.ws.once("message", (d: Buffer, isBinary: boolean) => resolve(isBinary ? "binary" : d.toString())));
    await a.messages.postMessage({ channelId: pub, text: "json please" });
    const text = await raw;
    const parsed = JSON.parse(text) as { event: { channelId: string; messagePosted: { message: { text: string; id: string } } } };
    expect(parsed.event.channelId).toBe(pub.toString());
    expect(parsed.event.messagePosted.message.text).toBe("json please");
    expect(typeof parsed.event.messagePosted.message.id).toBe("string");
  });

  it("answers pings", async () => {
    const s = await connect(a);
    s.send({ frame: { case: "ping", value: { nonce: 42n } } });
    const pong = await s.next((f) => f.frame.case === "pong");
    expect(pong.frame.case === "pong" && pong.frame.value.nonce).toBe(42n);
  });
});

describe("fan-out", () => {
  it("gives each socket exactly the events of its channels, on every device", async () => {
    const [a1, a2, bs, cs] = [await connect(a), await connect(a), await connect(b), await connect(c)];
    const p = (await a.messages.postMessage({ channelId: pub, text: "to public" })).message!.id;
    const q = (await a.messages.postMessage({ channelId: priv, text: "to private" })).message!.id;
    const d = (await b.messages.postMessage({ channelId: dm, text: "to dm" })).message!.id;
    await Promise.all([a1.collect(isEvent("messagePosted"), 3), a2.collect(isEvent("messagePosted"), 3)]);
    await bs.collect(isEvent("messagePosted"), 2);
    await cs.collect(isEvent("messagePosted"), 1);
    await settle();
    expect(postedIds(a1.frames)).toEqual([p, q, d]);
    expect(postedIds(a2.frames)).toEqual([p, q, d]);
    expect(postedIds(bs.frames)).toEqual([p, d]);
    expect(postedIds(cs.frames)).toEqual([q]);
  });

  it("keeps one bus subscription per channel with local sockets, dropped with the last", async () => {
    const e = await t.newUser("E");
    await e.channels.createChannel({ name: `refcount-${Date.now()}` });
    const before = t.api.fanout.subscriptionCount;
    const s1 = await connect(e);
    const s2 = await connect(e);
    // One for E's channel, one for E's own subject, however many sockets.
    expect(t.api.fanout.subscriptionCount).toBe(before + 2);
    await s1.close();
    await settle();
    expect(t.api.fanout.subscriptionCount).toBe(before + 2);
    await s2.close();
    await settle();
    expect(t.api.fanout.subscriptionCount).toBe(before);
  });

  it("keeps each channel's order under concurrent posters", async () => {
    const watcher = await connect(a);
    const posters = await Promise.all([connect(a), connect(b), connect(a), connect(b)]);
    posters.forEach((s, i) => {
      for (let n = 0; n < 50; n++) s.send({ frame: { case: "post", value: { channelId: pub, text: `p${i}-${n}`, clientMsgId: `p${i}-${n}` } } });
    });
    await Promise.all(posters.map((s) => s.collect((f) => f.frame.case === "ack", 50, 10_000)));
    const frames = await watcher.collect(isEvent("messagePosted", pub), 200, 10_000);
    const ids = postedIds(frames);
    expect(new Set(ids).size).toBe(200);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    const history = await a.messages.listMessages({ channelId: pub, limit: 200 });
    expect(history.messages.map((m) => m.id).reverse()).toEqual(ids);
  });
});

describe("live membership changes", () => {
  it("starts delivering a channel the user joins, and stops when they leave, without reconnecting", async () => {
    const { channel } = await a.channels.createChannel({ name: `live-${Date.now()}` });
    const cs = await connect(c);
    await a.messages.postMessage({ channelId: channel!.id, text: "before join" });
    await c.channels.joinChannel({ channelId: channel!.id });
    await cs.next(isEvent("memberJoined", channel!.id));
    const during = (await a.messages.postMessage({ channelId: channel!.id, text: "while member" })).message!.id;
    await cs.next(isEvent("messagePosted", channel!.id));
    await c.channels.leaveChannel({ channelId: channel!.id });
    await cs.next(isEvent("memberLeft", channel!.id));
    await a.messages.postMessage({ channelId: channel!.id, text: "after leave" });
    await settle();
    expect(postedIds(cs.frames, channel!.id)).toEqual([during]);
    expect(cs.frames.filter(isEvent("memberJoined", channel!.id))).toHaveLength(1);
    expect(cs.frames.filter(isEvent("memberLeft", channel!.id))).toHaveLength(1);
  });

  it("delivers a private channel once the user is added", async () => {
    const { channel } = await a.channels.createChannel({ name: `added-${Date.now()}`, visibility: Visibility.PRIVATE });
    const bs = await connect(b);
    await a.channels.addMember({ channelId: channel!.id, userId: b.id });
    await bs.next(isEvent("memberJoined", channel!.id));
    const m = (await a.messages.postMessage({ channelId: channel!.id, text: "welcome" })).message!.id;
    await bs.next(isEvent("messagePosted", channel!.id));
    expect(postedIds(bs.frames, channel!.id)).toEqual([m]);
  });

  it("delivers a new direct message opened by the other side", async () => {
    const d = await t.newUser("D");
    const ds = await connect(d);
    const { channel } = await c.channels.openDirectMessage({ userId: d.id });
    await ds.next(isEvent("directMessageOpened", channel!.id));
    const m = (await c.messages.postMessage({ channelId: channel!.id, text: "hi D" })).message!.id;
    await ds.next(isEvent("messagePosted", channel!.id));
    expect(postedIds(ds.frames, channel!.id)).toEqual([m]);
  });
});

describe("posting over the socket", () => {
  it("acks with the stored message and answers a retry with the original", async () => {
    const s = await connect(a);
    s.send({ frame: { case: "post", value: { channelId: pub, text: "over the socket", clientMsgId: "ws-1" } } });
    const ack = await s.next((f) => f.frame.case === "ack");
    if (ack.frame.case !== "ack") throw new Error();
    expect(ack.frame.value).toMatchObject({ clientMsgId: "ws-1", duplicate: false, message: { text: "over the socket", senderId: a.id } });
    s.send({ frame: { case: "post", value: { channelId: pub, text: "over the socket", clientMsgId: "ws-1" } } });
    const again = await s.next((f) => f.frame.case === "ack");
    if (again.frame.case !== "ack") throw new Error();
    expect(again.frame.value.duplicate).toBe(true);
    expect(again.frame.value.message?.id).toBe(ack.frame.value.message?.id);
    const history = await a.messages.listMessages({ channelId: pub, limit: 5 });
    expect(history.messages.filter((m) => m.clientMsgId === "ws-1")).toHaveLength(1);
  });

  it("rejects bad posts with an error frame naming the field, writing nothing", async () => {
    const s = await connect(c);
    s.send({ frame: { case: "post", value: { channelId: pub, text: "not a member", clientMsgId: "e1" } } });
    s.send({ frame: { case: "post", value: { channelId: priv, text: "", clientMsgId: "e2" } } });
    s.send({ frame: { case: "post", value: { channelId: dm, text: "not mine", clientMsgId: "e3" } } });
    const errors = await s.collect((f) => f.frame.case === "error", 3);
    const values = errors.map((f) => (f.frame.case === "error" ? f.frame.value : undefined));
    expect(values.map((v) => [v?.clientMsgId, v?.error?.code])).toEqual([
      ["e1", ErrorCode.PERMISSION_DENIED],
      ["e2", ErrorCode.INVALID_ARGUMENT],
      ["e3", ErrorCode.NOT_FOUND],
    ]);
    expect(values[1]?.error?.message).toMatch(/^text: /);
  });
});

describe("delivery modes", () => {
  it("FAST delivers and still stores; EPHEMERAL delivers and never stores", async () => {
    const stamp = Date.now().toString(36);
    const fast = (await a.channels.createChannel({ name: `fast-${stamp}`, delivery: DeliveryMode.FAST })).channel!.id;
    const eph = (await a.channels.createChannel({ name: `eph-${stamp}`, delivery: DeliveryMode.EPHEMERAL })).channel!.id;
    await b.channels.joinChannel({ channelId: fast });
    await b.channels.joinChannel({ channelId: eph });
    const bs = await connect(b);
    const as = await connect(a);
    as.send({ frame: { case: "post", value: { channelId: fast, text: "quick", clientMsgId: "f1" } } });
    as.send({ frame: { case: "post", value: { channelId: eph, text: "gone soon", clientMsgId: "x1" } } });
    // Across channels the order is free: a keyed FAST post waits for the log's verdict, an EPHEMERAL one does not.
    const [fastEvent] = await bs.collect(isEvent("messagePosted", fast), 1);
    const [ephEvent] = await bs.collect(isEvent("messagePosted", eph), 1);
    expect(fastEvent!.frame.case === "event" && fastEvent!.frame.value.payload.case === "messagePosted" && fastEvent!.frame.value.payload.value.delivery).toBe(DeliveryMode.FAST);
    expect(ephEvent!.frame.case === "event" && ephEvent!.frame.value.payload.case === "messagePosted" && ephEvent!.frame.value.payload.value.delivery).toBe(DeliveryMode.EPHEMERAL);
    await as.collect((f) => f.frame.case === "ack", 2);
    expect((await b.messages.listMessages({ channelId: fast })).messages.map((m) => m.text)).toEqual(["quick"]);
    expect((await b.messages.listMessages({ channelId: eph })).messages).toEqual([]);
  });
});

describe("gateway metrics", () => {
  it("exposes connections, frames, closes and delivery latency on the gateway port", async () => {
    const s = await connect(a);
    await a.messages.postMessage({ channelId: pub, text: "measured" });
    await s.next(isEvent("messagePosted", pub));
    const port = new URL(t.wsUrl).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^chat_gateway_connections [1-9]/m);
    expect(text).toMatch(/chat_gateway_frames_out_total\{kind="messagePosted"\} [1-9]/);
    expect(text).toMatch(/chat_gateway_frames_in_total\{kind="post"\}/);
    expect(text).toMatch(/chat_gateway_closes_total\{reason="rejected 401"\} [1-9]/);
    expect(text).toMatch(/chat_gateway_delivery_latency_seconds_count [1-9]/);
    expect(text).toMatch(/^chat_gateway_bus_subscriptions [1-9]/m);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });
});

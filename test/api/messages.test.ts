import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdGenerator } from "../../core/ids.js";
import { MessageOrder, type Message } from "../../gen/chat/v1/message_pb.js";
import { DeliveryMode, startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";

let t: TestApi;
let alice: TestUser, bob: TestUser;
beforeAll(async () => {
  t = await startTestApi();
  alice = await t.newUser("Alice");
  bob = await t.newUser("Bob");
});
afterAll(() => t.stop());

let n = 0;
async function channelWith(...members: TestUser[]): Promise<bigint> {
  const [first, ...rest] = members;
  const { channel } = await first!.channels.createChannel({ name: `m-${Date.now().toString(36)}-${++n}` });
  for (const m of rest) await m.channels.joinChannel({ channelId: channel!.id });
  return channel!.id;
}

async function postMany(u: TestUser, channelId: bigint, count: number, prefix = "m"): Promise<Message[]> {
  const out: Message[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, j) => u.messages.postMessage({ channelId, text: `${prefix}${i + j}` })),
    );
    out.push(...batch.map((r) => r.message!));
  }
  return out;
}

describe("MessageService", () => {
  it("posts and lists newest first with the documented defaults", async () => {
    const ch = await channelWith(alice, bob);
    const posted = await postMany(alice, ch, 60);
    const { message } = await bob.messages.postMessage({ channelId: ch, text: "from bob" });
    expect(message).toMatchObject({ channelId: ch, senderId: bob.id, text: "from bob" });
    expect(message!.createdAt).toBeDefined();
    const page = await bob.messages.listMessages({ channelId: ch });
    expect(page.messages).toHaveLength(50);
    expect(page.messages[0]!.id).toBe(message!.id);
    expect(page.hasMore).toBe(true);
    expect(page.nextCursor).toBe(page.messages.at(-1)!.id);
    const rest = await bob.messages.listMessages({ channelId: ch, before: page.nextCursor, limit: 200 });
    expect(rest.hasMore).toBe(false);
    expect([...page.messages, ...rest.messages].map((m) => m.id).reverse()).toEqual([...posted.map((m) => m.id).sort((a, b) => (a < b ? -1 : 1)), message!.id]);
  });

  it("pages to the end without duplicates or gaps while new messages keep arriving", async () => {
    const ch = await channelWith(alice, bob);
    await postMany(alice, ch, 300, "old");
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop) await bob.messages.postMessage({ channelId: ch, text: `new${i++}` });
      return i;
    })();
    const walked: Message[] = [];
    let before = 0n;
    for (;;) {
      const page = await alice.messages.listMessages({ channelId: ch, limit: 37, before });
      walked.push(...page.messages);
      if (!page.hasMore) break;
      before = page.nextCursor;
    }
    stop = true;
    const newCount = await writer;
    expect(newCount).toBeGreaterThan(0);
    const ids = walked.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! < ids[i - 1]!).toBe(true);
    // Everything at or below the first id we saw is in the walk, exactly once.
    const all: Message[] = [];
    let cursor = 0n;
    for (;;) {
      const page = await alice.messages.listMessages({ channelId: ch, limit: 200, after: cursor, order: MessageOrder.OLDEST_FIRST });
      all.push(...page.messages);
      if (!page.hasMore) break;
      cursor = page.nextCursor;
    }
    expect(all.filter((m) => m.id <= ids[0]!).map((m) => m.id).reverse()).toEqual(ids);
    expect(all.filter((m) => m.text.startsWith("old"))).toHaveLength(300);
  });

  it("catches up oldest first from a cursor, bounded on both sides", async () => {
    const ch = await channelWith(alice);
    const posted = (await postMany(alice, ch, 30)).sort((a, b) => (a.id < b.id ? -1 : 1));
    const page = await alice.messages.listMessages({ channelId: ch, after: posted[9]!.id, before: posted[20]!.id, order: MessageOrder.OLDEST_FIRST, limit: 4 });
    expect(page.messages.map((m) => m.id)).toEqual(posted.slice(10, 14).map((m) => m.id));
    expect(page.hasMore).toBe(true);
    const next = await alice.messages.listMessages({ channelId: ch, after: page.nextCursor, before: posted[20]!.id, order: MessageOrder.OLDEST_FIRST, limit: 100 });
    expect(next.messages.map((m) => m.id)).toEqual(posted.slice(14, 20).map((m) => m.id));
    expect(next.hasMore).toBe(false);
  });

  it("answers retries with the original message, also for concurrent retries", async () => {
    const ch = await channelWith(alice, bob);
    const first = await alice.messages.postMessage({ channelId: ch, text: "once", clientMsgId: "retry-1" });
    expect(first.duplicate).toBe(false);
    const again = await alice.messages.postMessage({ channelId: ch, text: "once (resent)", clientMsgId: "retry-1" });
    expect(again.duplicate).toBe(true);
    expect(again.message).toEqual(first.message);

    const storm = await Promise.all(
      Array.from({ length: 25 }, () => alice.messages.postMessage({ channelId: ch, text: "storm", clientMsgId: "retry-2" })),
    );
    expect(new Set(storm.map((r) => r.message!.id)).size).toBe(1);
    expect(storm.filter((r) => !r.duplicate)).toHaveLength(1);
    // Another sender's identical key is their own message.
    const bobs = await bob.messages.postMessage({ channelId: ch, text: "mine", clientMsgId: "retry-2" });
    expect(bobs.duplicate).toBe(false);
    const history = await alice.messages.listMessages({ channelId: ch });
    expect(history.messages.map((m) => m.text).sort()).toEqual(["mine", "once", "storm"]);
  });

  it("delivers FAST messages before storing them, and they still end up in history", async () => {
    const { channel } = await alice.channels.createChannel({ name: `fast-${Date.now()}`, delivery: DeliveryMode.FAST });
    const events: bigint[] = [];
    const sub = t.api.bus.subscribe(t.api.subjects.channel(channel!.id), (e) => {
      if (e.payload.case === "messagePosted") events.push(e.payload.value.message!.id);
    });
    const posted = await Promise.all(Array.from({ length: 20 }, (_, i) => alice.messages.postMessage({ channelId: channel!.id, text: `f${i}`, clientMsgId: `f${i}` })));
    sub.unsubscribe();
    const ids = posted.map((p) => p.message!.id).sort((a, b) => (a < b ? -1 : 1));
    expect(events).toEqual(ids);
    const history = await alice.messages.listMessages({ channelId: channel!.id, order: MessageOrder.OLDEST_FIRST });
    expect(history.messages.map((m) => m.id)).toEqual(ids);
    const retry = await alice.messages.postMessage({ channelId: channel!.id, text: "f0", clientMsgId: "f0" });
    expect(retry.duplicate).toBe(true);
  });

  it("delivers EPHEMERAL messages without ever storing them", async () => {
    const { channel } = await alice.channels.createChannel({ name: `eph-${Date.now()}`, delivery: DeliveryMode.EPHEMERAL });
    const events: string[] = [];
    const sub = t.api.bus.subscribe(t.api.subjects.channel(channel!.id), (e) => {
      if (e.payload.case === "messagePosted") events.push(e.payload.value.message!.text);
    });
    const first = await alice.messages.postMessage({ channelId: channel!.id, text: "now you see me", clientMsgId: "e1" });
    const retry = await alice.messages.postMessage({ channelId: channel!.id, text: "now you see me", clientMsgId: "e1" });
    await new Promise((r) => setTimeout(r, 20));
    sub.unsubscribe();
    expect(retry.duplicate).toBe(true);
    expect(retry.message!.id).toBe(first.message!.id);
    expect(events).toEqual(["now you see me"]);
    expect((await alice.messages.listMessages({ channelId: channel!.id })).messages).toEqual([]);
  });

  it("serves ListMessages as an HTTP GET that revalidates: 304 while unchanged, the new text at once after an edit or delete", async () => {
    const ch = await channelWith(alice);
    const [m, n] = await postMany(alice, ch, 2);
    const get = async (message: object, etag?: string) => {
      const q = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(message) });
      return fetch(`${t.url}/chat.v1.MessageService/ListMessages?${q}`, {
        headers: { authorization: `Bearer ${alice.token}`, ...(etag && { "if-none-match": etag }) },
      });
    };
    const texts = async (r: Response) => ((await r.json()) as { messages: Array<{ text: string }> }).messages.map((x) => x.text);
    const first = await get({ channelId: ch.toString() });
    expect(first.status).toBe(200);
    expect(first.headers.get("cache-control")).toBe("private, no-cache");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^W\/".+"$/);
    expect(await texts(first)).toEqual([n!.text, m!.text]);
    const again = await get({ channelId: ch.toString() }, etag);
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");

    await alice.messages.editMessage({ channelId: ch, messageId: m!.id, text: "edited" });
    const edited = await get({ channelId: ch.toString() }, etag);
    expect(edited.status).toBe(200);
    expect(await texts(edited)).toEqual([n!.text, "edited"]);
    await alice.messages.deleteMessage({ channelId: ch, messageId: n!.id });
    const deleted = await get({ channelId: ch.toString() }, edited.headers.get("etag")!);
    expect(await texts(deleted)).toEqual(["edited"]);
  });
});

describe("history cache", () => {
  const reads = async () => {
    const metric = await t.api.metrics.historyReads.get();
    const of = (source: string) => metric.values.find((v) => v.labels.source === source)?.value ?? 0;
    return { store: of("store"), cache: of("cache"), coalesced: of("coalesced") };
  };
  const delta = (a: Awaited<ReturnType<typeof reads>>, b: Awaited<ReturnType<typeof reads>>) => ({
    store: b.store - a.store,
    cache: b.cache - a.cache,
    coalesced: b.coalesced - a.coalesced,
  });

  it("serves a page wholly in the past from memory, coalesces identical reads, and never caches the live edge", async () => {
    const ch = await channelWith(alice, bob);
    // Messages from an hour ago, written straight into the store.
    const hourAgo = createIdGenerator({ nodeId: 77, now: () => Date.now() - 3600_000 });
    const old: bigint[] = [];
    for (let i = 0; i < 30; i++) {
      const record = { id: hourAgo.next(), channelId: ch, senderId: alice.id, text: `old${i}`, clientMsgId: "" };
      await t.api.store.appendMessage(record);
      old.push(record.id);
    }
    await postMany(alice, ch, 3, "new");
    const pastPage = { channelId: ch, before: old[20]!, limit: 10 };

    let before = await reads();
    const first = await bob.messages.listMessages(pastPage);
    const second = await alice.messages.listMessages(pastPage);
    expect(second).toEqual(first);
    expect(first.messages.map((m) => m.id)).toEqual(old.slice(10, 20).reverse());
    expect(delta(before, await reads())).toEqual({ store: 1, cache: 1, coalesced: 0 });

    before = await reads();
    const together = await Promise.all(Array.from({ length: 8 }, () => bob.messages.listMessages({ ...pastPage, limit: 7 })));
    expect(new Set(together.map((p) => p.messages.map((m) => m.id).join()))).toHaveProperty("size", 1);
    const d = delta(before, await reads());
    expect(d.store).toBe(1);
    expect(d.cache + d.coalesced).toBe(7);

    // The newest page can still grow: read from the store every time.
    before = await reads();
    await bob.messages.listMessages({ channelId: ch, limit: 5 });
    await bob.messages.postMessage({ channelId: ch, text: "newest" });
    const live = await bob.messages.listMessages({ channelId: ch, limit: 5 });
    expect(live.messages[0]!.text).toBe("newest");
    expect(delta(before, await reads())).toMatchObject({ store: 2, cache: 0 });

    // Membership is still checked on every read, cached page or not.
    const outsider = await t.newUser("Outsider");
    await expectCode(outsider.messages.listMessages(pastPage), Code.PermissionDenied);
  });

  it("never serves a cached page stale after an edit, a delete or a reaction is answered", async () => {
    const ch = await channelWith(alice, bob);
    const hourAgo = createIdGenerator({ nodeId: 78, now: () => Date.now() - 3600_000 });
    const old: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const record = { id: hourAgo.next(), channelId: ch, senderId: alice.id, text: `old${i}`, clientMsgId: "" };
      await t.api.store.appendMessage(record);
      old.push(record.id);
    }
    const pastPage = { channelId: ch, before: old[9]!, limit: 5 };
    const texts = async () => (await bob.messages.listMessages(pastPage)).messages.map((m) => m.text);
    expect(await texts()).toEqual(["old8", "old7", "old6", "old5", "old4"]);
    const before = await reads();
    expect(await texts()).toEqual(["old8", "old7", "old6", "old5", "old4"]);
    expect(delta(before, await reads())).toMatchObject({ cache: 1, store: 0 });

    await alice.messages.editMessage({ channelId: ch, messageId: old[7]!, text: "old7, edited" });
    expect(await texts()).toEqual(["old8", "old7, edited", "old6", "old5", "old4"]);
    await alice.messages.deleteMessage({ channelId: ch, messageId: old[6]! });
    expect(await texts()).toEqual(["old8", "old7, edited", "old5", "old4", "old3"]);
    await bob.messages.addReaction({ channelId: ch, messageId: old[8]!, emoji: "🧊" });
    const page = await bob.messages.listMessages(pastPage);
    expect(page.messages[0]!.reactions).toMatchObject([{ emoji: "🧊", count: 1, me: true }]);
    // Another viewer of the same cached page sees the same reaction, not as theirs.
    expect((await alice.messages.listMessages(pastPage)).messages[0]!.reactions).toMatchObject([{ emoji: "🧊", count: 1, me: false }]);
  });
});

describe("MessageService.StreamPostMessages", () => {
  async function* from<T>(items: T[]) {
    for (const item of items) yield item;
  }

  it.each(["grpc", "connect-binary"] as const)("posts in order over %s and answers every request, errors included", async (protocol) => {
    const ch = await channelWith(alice, bob);
    const other = (await bob.channels.createChannel({ name: `private-${Date.now()}-${protocol}`, visibility: 2 })).channel!.id;
    const stream = t.clients(alice.token, protocol).messages.streamPostMessages(
      from([
        { channelId: ch, text: "one", clientMsgId: "s1" },
        { channelId: ch, text: "", clientMsgId: "s2" },
        { channelId: other, text: "not mine", clientMsgId: "s3" },
        { channelId: ch, text: "two", clientMsgId: "s4" },
        { channelId: ch, text: "one again", clientMsgId: "s1" },
        { channelId: ch, text: "three" },
      ]),
    );
    const answers = [];
    for await (const a of stream) answers.push(a);
    expect(answers.map((a) => a.clientMsgId)).toEqual(["s1", "s2", "s3", "s4", "s1", ""]);
    expect(answers.map((a) => a.error?.code ?? 0)).toEqual([0, Code.InvalidArgument, Code.NotFound, 0, 0, 0]);
    expect(answers[1]!.error?.message).toMatch(/^text: must not be empty/);
    expect(answers[1]!.message).toBeUndefined();
    expect(answers[4]).toMatchObject({ duplicate: true });
    expect(answers[4]!.message?.id).toBe(answers[0]!.message?.id);
    const history = await alice.messages.listMessages({ channelId: ch, order: MessageOrder.OLDEST_FIRST });
    expect(history.messages.map((m) => m.text)).toEqual(["one", "two", "three"]);
    expect(history.messages.map((m) => m.id)).toEqual([answers[0], answers[3], answers[5]].map((a) => a!.message!.id));
  });

  it("keeps each stream's order under many concurrent streams", async () => {
    const ch = await channelWith(alice, bob);
    const streams = await Promise.all(
      Array.from({ length: 8 }, async (_, s) => {
        const who = s % 2 ? alice : bob;
        const ids: bigint[] = [];
        // More than MAX_STREAM_IN_FLIGHT per stream, so back-pressure is exercised.
        const requests = Array.from({ length: 150 }, (_, i) => ({ channelId: ch, text: `s${s}-${i}`, clientMsgId: `s${s}-${i}` }));
        for await (const a of t.clients(who.token, "grpc").messages.streamPostMessages(from(requests))) ids.push(a.message!.id);
        return ids;
      }),
    );
    for (const ids of streams) {
      expect(ids).toHaveLength(150);
      for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    }
    const history = await alice.messages.listMessages({ channelId: ch, limit: 200 });
    expect(history.hasMore).toBe(true);
  });

  it("refuses to open without a valid token", async () => {
    const stream = t.clients("not-a-token", "grpc").messages.streamPostMessages(from([{ channelId: 1n, text: "x" }]));
    await expectCode((async () => { for await (const _ of stream) void _; })(), Code.Unauthenticated);
  });

  it("ends with UNAUTHENTICATED when the token expires mid-stream", async () => {
    const ch = await channelWith(alice);
    const { token } = await t.admin.users.issueToken({ userId: alice.id, ttlSeconds: 1 });
    async function* slow() {
      yield { channelId: ch, text: "before expiry" };
      await new Promise((r) => setTimeout(r, 2100));
      yield { channelId: ch, text: "after expiry" };
    }
    const answers: string[] = [];
    const run = (async () => {
      for await (const a of t.clients(token, "grpc").messages.streamPostMessages(slow())) answers.push(a.message?.text ?? "");
    })();
    await expectCode(run, Code.Unauthenticated, /expired/);
    expect(answers).toEqual(["before expiry"]);
  });
});

describe("MessageService bad input", () => {
  let ch: bigint;
  beforeAll(async () => {
    ch = await channelWith(alice, bob);
    await alice.messages.postMessage({ channelId: ch, text: "baseline" });
  });
  const historySize = async () => (await alice.messages.listMessages({ channelId: ch, limit: 200 })).messages.length;

  it("rejects bad posts naming the field, and writes nothing", async () => {
    const before = await historySize();
    const cases: Array<[Promise<unknown>, Code, RegExp]> = [
      [alice.messages.postMessage({ channelId: ch, text: "" }), Code.InvalidArgument, /^text: must not be empty/],
      [alice.messages.postMessage({ channelId: ch, text: " \n\t " }), Code.InvalidArgument, /^text: must not be empty/],
      [alice.messages.postMessage({ channelId: ch, text: "x".repeat(40_001) }), Code.InvalidArgument, /^text: must be at most 40000 characters/],
      [alice.messages.postMessage({ channelId: ch, text: "bad\u0000byte" }), Code.InvalidArgument, /^text: /],
      [alice.messages.postMessage({ channelId: ch, text: "ok", clientMsgId: "k".repeat(65) }), Code.InvalidArgument, /^client_msg_id: /],
      [alice.messages.postMessage({ channelId: 0n, text: "ok" }), Code.InvalidArgument, /^channel_id: required/],
      [alice.messages.postMessage({ channelId: 18446744073709551615n, text: "ok" }), Code.InvalidArgument, /^channel_id: not a valid id/],
      [alice.messages.postMessage({ channelId: 987654321n, text: "ok" }), Code.NotFound, /channel 987654321 not found/],
    ];
    for (const [call, code, message] of cases) await expectCode(call, code, message);
    expect(await historySize()).toBe(before);
  });

  it("takes text of exactly 40,000 characters, counting code points", async () => {
    const text = "😀".repeat(40_000);
    const { message } = await alice.messages.postMessage({ channelId: ch, text });
    expect(message!.text).toBe(text);
  });

  it("rejects bad listings naming the field", async () => {
    await expectCode(alice.messages.listMessages({ channelId: ch, limit: 201 }), Code.InvalidArgument, /^limit: must be at most 200/);
    await expectCode(alice.messages.listMessages({ channelId: ch, before: 5n, after: 9n }), Code.InvalidArgument, /^before: must be greater than after/);
    await expectCode(alice.messages.listMessages({ channelId: ch, before: 1n << 63n }), Code.InvalidArgument, /^before: not a valid id/);
    await expectCode(alice.messages.listMessages({ channelId: ch, order: 7 as MessageOrder }), Code.InvalidArgument, /^order: /);
  });

  it("rejects malformed JSON, bad cursors, unknown fields, garbage bytes and oversized bodies", async () => {
    const post = (path: string, body: string | Uint8Array, contentType = "application/json") =>
      fetch(`${t.url}/chat.v1.MessageService/${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice.token}`, "content-type": contentType },
        body,
      });
    const expectError = async (res: Response, code: string, message: RegExp) => {
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code, JSON.stringify(body)).toBe(code);
      expect(body.message).toMatch(message);
    };
    const before = await historySize();
    await expectError(await post("PostMessage", "{not json"), "invalid_argument", /PostMessageRequest/);
    await expectError(await post("ListMessages", JSON.stringify({ channelId: ch.toString(), before: "abc" })), "invalid_argument", /before/);
    await expectError(await post("ListMessages", JSON.stringify({ channelId: ch.toString(), before: "-1" })), "invalid_argument", /before/);
    await expectError(await post("PostMessage", JSON.stringify({ channelId: ch.toString(), text: "x", colour: "red" })), "invalid_argument", /colour/);
    await expectError(await post("PostMessage", new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x01]), "application/proto"), "invalid_argument", /parse binary/);
    await expectError(
      await post("PostMessage", JSON.stringify({ channelId: ch.toString(), text: "y".repeat(2 * 1024 * 1024) })),
      "resource_exhausted",
      /exceeds|max/i,
    );
    expect(await historySize()).toBe(before);
  });

  it("answers garbage protobuf with INVALID_ARGUMENT over gRPC and gRPC-Web too", async () => {
    const http2 = await import("node:http2");
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0x07, 0x01]);
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
    // gRPC over h2c: the status travels in trailers.
    const status = await new Promise<string | undefined>((resolve, reject) => {
      const session = http2.connect(t.url);
      const req = session.request({
        ":method": "POST",
        ":path": "/chat.v1.MessageService/PostMessage",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${alice.token}`,
      });
      let result: string | undefined;
      req.on("response", (h) => (result = (h["grpc-status"] as string | undefined) ?? result));
      req.on("trailers", (h) => (result = h["grpc-status"] as string));
      req.on("data", () => {});
      req.on("end", () => (session.close(), resolve(result)));
      req.on("error", reject);
      req.end(envelope);
    });
    expect(status).toBe(String(Code.InvalidArgument));
    // gRPC-Web over HTTP/1.1: the status travels in a trailer frame of the body.
    const res = await fetch(`${t.url}/chat.v1.MessageService/PostMessage`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", authorization: `Bearer ${alice.token}` },
      body: envelope,
    });
    const text = Buffer.from(await res.arrayBuffer()).toString("latin1") + (res.headers.get("grpc-status") ?? "");
    expect(text).toMatch(new RegExp(`grpc-status: ?${Code.InvalidArgument}|^${Code.InvalidArgument}$`));
  });

  it("survives raw garbage on the port and keeps serving", async () => {
    const net = await import("node:net");
    const url = new URL(t.url);
    for (const junk of [Buffer.from([0, 1, 2, 3, 255, 254]), Buffer.from("PRI garbage that is not http2\r\n\r\n"), Buffer.from("GET / HTTP/9.9\r\n\r\n")]) {
      await new Promise<void>((resolve) => {
        const s = net.connect(Number(url.port), url.hostname, () => s.write(junk));
        s.on("data", () => {});
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        setTimeout(() => (s.destroy(), resolve()), 1000);
      });
    }
    expect((await alice.messages.listMessages({ channelId: ch, limit: 1 })).messages).toHaveLength(1);
  });

  it("answers an RPC without a usable Host with 400, and keeps serving", async () => {
    // Each of these used to throw inside connect-node's adapter, out of the
    // request handler: an uncaught exception, which stops the process.
    const net = await import("node:net");
    const url = new URL(t.url);
    const send = (request: string) =>
      new Promise<string>((resolve) => {
        let got = "";
        const s = net.connect(Number(url.port), url.hostname, () => s.write(request));
        s.on("data", (d) => (got += d.toString("latin1")));
        s.on("close", () => resolve(got));
        s.on("error", () => resolve(got));
      });
    const body = "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    const path = "POST /chat.v1.MessageService/ListMessages";
    expect(await send(`${path} HTTP/1.1\r\nHost: bad host\r\n${body}`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await send(`${path} HTTP/1.0\r\n${body}`)).toMatch(/^HTTP\/1\.1 400 /);
    expect((await alice.messages.listMessages({ channelId: ch, limit: 1 })).messages).toHaveLength(1);
  });
});

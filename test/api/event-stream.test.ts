/** Bots get the WebSocket's events over a gRPC stream: same authorization, same resume semantics. */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/chat/v1/event_service_pb.js";
import { startTestApi, Visibility, type TestApi, type TestUser } from "../support/api.js";

const def = protoLoader.loadSync(["chat/v1/event_service.proto"], {
  keepCase: true,
  includeDirs: ["proto"],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const chat = (grpc.loadPackageDefinition(def) as any).chat.v1;

let t: TestApi;
let bot: TestUser, human: TestUser, stranger: TestUser;
let shared: bigint, secret: bigint;

beforeAll(async () => {
  t = await startTestApi();
  bot = await t.newUser("Bot");
  human = await t.newUser("Human");
  stranger = await t.newUser("Stranger");
  shared = (await human.channels.createChannel({ name: `ops-${Date.now()}` })).channel!.id;
  await bot.channels.joinChannel({ channelId: shared });
  secret = (await stranger.channels.createChannel({ name: `secret-${Date.now()}`, visibility: Visibility.PRIVATE })).channel!.id;
});
afterAll(() => t.stop());

interface Item {
  item: "event" | "resumed" | "error";
  event?: { channel_id: string; seq: string; payload?: string; message_posted?: { message: { id: string; text: string; deleted: boolean } } };
  resumed?: { channel_id: string; replayed: number; complete: boolean; last_seq: string };
  error?: { error: { code: string; message: string } };
}

function subscribe(token: string, cursors: Array<{ channel_id: string; last_seq: string }> = []) {
  const client = new chat.EventService(new URL(t.url).host, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const call: grpc.ClientReadableStream<Item> = client.Subscribe({ cursors }, md);
  const items: Item[] = [];
  const waiters: Array<() => void> = [];
  const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
    call.on("status", (s: grpc.StatusObject) => resolve(s));
    call.on("error", (e: Error) => resolve(e));
  });
  call.on("data", (item: Item) => {
    items.push(item);
    for (const w of waiters.splice(0)) w();
  });
  return {
    items,
    ended,
    async until(pred: (items: Item[]) => boolean, ms = 5000) {
      const deadline = Date.now() + ms;
      while (!pred(items)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${items.length} items`);
        await new Promise<void>((r) => {
          const tm = setTimeout(r, 100);
          waiters.push(() => (clearTimeout(tm), r()));
        });
      }
    },
    close() {
      call.cancel();
      client.close();
    },
  };
}

const texts = (items: Item[]) => items.filter((i) => i.item === "event" && i.event?.message_posted).map((i) => i.event!.message_posted!.message.text);

describe("EventService.Subscribe over gRPC", () => {
  it("streams the events of the bot's channels, and nothing else", async () => {
    const sub = subscribe(bot.token);
    await new Promise((r) => setTimeout(r, 200));
    await human.messages.postMessage({ channelId: shared, text: "deploy started" });
    await stranger.messages.postMessage({ channelId: secret, text: "not for bots" });
    await human.messages.postMessage({ channelId: shared, text: "deploy done" });
    await sub.until((items) => texts(items).length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(texts(sub.items)).toEqual(["deploy started", "deploy done"]);
    sub.close();
  });

  it("follows live membership: a channel the bot is added to starts streaming at once", async () => {
    const sub = subscribe(bot.token);
    await new Promise((r) => setTimeout(r, 200));
    const room = (await human.channels.createChannel({ name: `room-${Date.now()}`, visibility: Visibility.PRIVATE })).channel!.id;
    await human.channels.addMember({ channelId: room, userId: bot.id });
    await human.messages.postMessage({ channelId: room, text: "welcome, bot" });
    await sub.until((items) => texts(items).includes("welcome, bot"));
    expect(sub.items.some((i) => i.event?.channel_id === String(room) && (i.event as Record<string, unknown>).member_joined)).toBe(true);
    sub.close();
  });

  it("resumes from a cursor: replays what it missed, in order, then a marker, then live events", async () => {
    await human.messages.postMessage({ channelId: shared, text: "seen" });
    // The channel's change log so far ends with "seen": the cursor of a bot that saw it.
    let seen = 0n;
    for (let more = true; more; ) {
      const page = await human.events.listChanges({ channelId: shared, afterSeq: seen });
      seen = page.nextSeq;
      more = page.hasMore;
    }
    const missed: string[] = [];
    for (let i = 0; i < 30; i++) {
      missed.push(`missed ${i}`);
      await human.messages.postMessage({ channelId: shared, text: `missed ${i}` });
    }
    const sub = subscribe(bot.token, [{ channel_id: String(shared), last_seq: String(seen) }]);
    await sub.until((items) => items.some((i) => i.item === "resumed"));
    await human.messages.postMessage({ channelId: shared, text: "after resume" });
    await sub.until((items) => texts(items).includes("after resume"));
    const markerAt = sub.items.findIndex((i) => i.item === "resumed");
    expect(texts(sub.items.slice(0, markerAt))).toEqual(missed);
    expect(sub.items[markerAt]!.resumed).toMatchObject({ channel_id: String(shared), replayed: 30, complete: true });
    expect(texts(sub.items.slice(markerAt + 1))).toEqual(["after resume"]);
    sub.close();
  });

  it("replays edits, deletes, reactions, replies and pins missed while away, once each, in order", async () => {
    const live = subscribe(bot.token);
    await new Promise((r) => setTimeout(r, 200));
    await human.messages.postMessage({ channelId: shared, text: "before" });
    await live.until((items) => texts(items).includes("before"));
    const cursor = live.items.filter((i) => i.event?.channel_id === String(shared)).at(-1)!.event!.seq;
    live.close();

    const root = (await human.messages.postMessage({ channelId: shared, text: "root" })).message!;
    await human.messages.editMessage({ channelId: shared, messageId: root.id, text: "root v2" });
    await bot.messages.addReaction({ channelId: shared, messageId: root.id, emoji: "🤖" });
    const reply = (await bot.messages.postMessage({ channelId: shared, text: "beep", threadRootId: root.id })).message!;
    await human.messages.pinMessage({ channelId: shared, messageId: root.id });
    await bot.messages.deleteMessage({ channelId: shared, messageId: reply.id });

    const sub = subscribe(bot.token, [{ channel_id: String(shared), last_seq: cursor }]);
    await sub.until((items) => items.some((i) => i.item === "resumed"));
    const markerAt = sub.items.findIndex((i) => i.item === "resumed");
    const replayed = sub.items.slice(0, markerAt).map((i) => i.event!);
    expect(replayed.map((e) => e.payload)).toEqual([
      "message_posted",
      "message_edited",
      "reaction_added",
      "message_posted",
      "thread_updated",
      "message_pinned",
      "message_deleted",
      "thread_updated",
    ]);
    expect(replayed.map((e) => BigInt(e.seq))).toEqual(replayed.map((_, i) => BigInt(cursor) + 1n + BigInt(i)));
    expect(replayed[0]!.message_posted!.message.text).toBe("root v2");
    expect(replayed[3]!.message_posted!.message).toMatchObject({ text: "", deleted: true });
    expect(sub.items[markerAt]!.resumed).toMatchObject({ replayed: 8, complete: true, last_seq: String(BigInt(cursor) + 8n) });
    sub.close();
  });

  it("refuses to resume channels that are not the bot's", async () => {
    const sub = subscribe(bot.token, [{ channel_id: String(secret), last_seq: "0" }]);
    await sub.until((items) => items.some((i) => i.item === "error"));
    expect(sub.items.find((i) => i.item === "error")!.error!.error.code).toBe("ERROR_CODE_NOT_FOUND");
    sub.close();
  });

  it("needs a valid token, and ends when the token expires", async () => {
    const bad = subscribe("nope");
    const status = (await bad.ended) as grpc.StatusObject;
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    const { token } = await t.admin.users.issueToken({ userId: bot.id, ttlSeconds: 1 });
    const short = subscribe(token);
    const end = (await short.ended) as grpc.StatusObject;
    expect(end.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(end.details).toMatch(/expired/);
  });

  // A stream's abort signal fires only when the client leaves before the
  // answer ends (rpc/connect-node-adapter.ts): these check that it still does.
  describe("releases what a stream held when its client goes away", () => {
    const subscriptions = async () =>
      Number(/^chat_gateway_bus_subscriptions (\d+)/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1] ?? NaN);
    const until = async (what: string, pred: () => Promise<boolean>) => {
      const deadline = Date.now() + 5000;
      while (!(await pred())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // The user's own subject and their channel's: subjects nobody else listens to.
    const loner = async () => {
      const user = await t.newUser("Loner");
      await user.channels.createChannel({ name: `alone-${Date.now()}-${Math.floor(Math.random() * 1e9)}`, visibility: Visibility.PRIVATE });
      return user;
    };

    it("over gRPC (HTTP/2 RST_STREAM)", async () => {
      const user = await loner();
      const before = await subscriptions();
      const sub = subscribe(user.token);
      await until("the stream subscribes", async () => (await subscriptions()) >= before + 2);
      sub.close();
      await until("its subscriptions are gone", async () => (await subscriptions()) === before);
    });

    for (const httpVersion of ["2", "1.1"] as const) {
      it(`over Connect, HTTP/${httpVersion}`, async () => {
        const user = await loner();
        const before = await subscriptions();
        const events = createClient(EventService, createConnectTransport({ baseUrl: t.url, httpVersion }));
        const abort = new AbortController();
        const reading = (async () => {
          for await (const _ of events.subscribe({}, { signal: abort.signal, headers: { authorization: `Bearer ${user.token}` } })) {
            // items are not the point here
          }
        })().catch(() => undefined);
        await until("the stream subscribes", async () => (await subscriptions()) >= before + 2);
        abort.abort();
        await reading;
        await until("its subscriptions are gone", async () => (await subscriptions()) === before);
      });
    }
  });
});

/**
 * Messages that change, over the WebSocket: every new event live to members
 * only, and every change missed while away replayed once, in order, on resume.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/chat/v1/event_pb.js";
import type { ServerFrame } from "../../gen/chat/v1/frame_pb.js";
import { startTestApi, Visibility, type TestApi, type TestUser } from "../support/api.js";
import { lastSeqOf, TestSocket } from "../support/ws-client.js";

let t: TestApi;
let a: TestUser, b: TestUser, c: TestUser;
let channel: bigint;
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
  channel = (await a.channels.createChannel({ name: `conv-ws-${Date.now().toString(36)}`, visibility: Visibility.PRIVATE })).channel!.id;
  await a.channels.addMember({ channelId: channel, userId: b.id });
});
afterAll(async () => {
  for (const s of open) s.ws.terminate();
  await t.stop();
});

const eventsOf = (frames: ServerFrame[], channelId: bigint): Event[] =>
  frames.flatMap((f) => (f.frame.case === "event" && f.frame.value.channelId === channelId ? [f.frame.value] : []));
const kinds = (events: Event[]) => events.map((e) => e.payload.case);

/** One of each change, in this order; returns the kinds of events they publish. */
async function everyKindOfChange(): Promise<string[]> {
  const root = (await a.messages.postMessage({ channelId: channel, text: "root" })).message!;
  await a.messages.editMessage({ channelId: channel, messageId: root.id, text: "root, edited" });
  await b.messages.addReaction({ channelId: channel, messageId: root.id, emoji: "👀" });
  const reply = (await b.messages.postMessage({ channelId: channel, text: "reply", threadRootId: root.id })).message!;
  await a.messages.pinMessage({ channelId: channel, messageId: root.id });
  await b.messages.removeReaction({ channelId: channel, messageId: root.id, emoji: "👀" });
  await a.messages.unpinMessage({ channelId: channel, messageId: root.id });
  await b.messages.deleteMessage({ channelId: channel, messageId: reply.id });
  return [
    "messagePosted",
    "messageEdited",
    "reactionAdded",
    "messagePosted",
    "threadUpdated",
    "messagePinned",
    "reactionRemoved",
    "messageUnpinned",
    "messageDeleted",
    "threadUpdated",
  ];
}

describe("live", () => {
  it("delivers every new event to members, in seq order, and nothing to others", async () => {
    const member = await connect(b);
    const other = await connect(c);
    const before = lastSeqOf(member.frames, channel);
    const expected = await everyKindOfChange();
    await member.collect((f) => f.frame.case === "event" && f.frame.value.channelId === channel, expected.length, 10_000);
    const got = eventsOf(member.frames, channel);
    expect(kinds(got)).toEqual(expected);
    const seqs = got.map((e) => e.seq);
    expect(seqs[0]! > before).toBe(true);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1n);
    const edited = got[1]!.payload;
    expect(edited.case === "messageEdited" && edited.value.message?.text).toBe("root, edited");
    const thread = got[4]!.payload;
    expect(thread.case === "threadUpdated" && thread.value.thread?.replyCount).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(eventsOf(other.frames, channel)).toEqual([]);
    member.ws.terminate();
    other.ws.terminate();
  });
});

describe("resume", () => {
  it("replays every change missed while away, once each, in order, before live events", async () => {
    const first = await connect(b);
    await a.messages.postMessage({ channelId: channel, text: "seen" });
    await first.next((f) => f.frame.case === "event" && f.frame.value.channelId === channel);
    const cursor = lastSeqOf(first.frames, channel);
    await first.close();

    const expected = await everyKindOfChange();
    const again = await connect(b, { resumeOnConnect: true });
    again.send({ frame: { case: "resume", value: { cursors: [{ channelId: channel, lastSeq: cursor }] } } });
    const marker = await again.next((f) => f.frame.case === "resumed");
    const live = (await a.messages.postMessage({ channelId: channel, text: "live again" })).message!;
    await again.next((f) => f.frame.case === "event" && f.frame.value.payload.case === "messagePosted" && f.frame.value.payload.value.message?.id === live.id);

    const at = again.frames.indexOf(marker);
    const replayed = eventsOf(again.frames.slice(0, at), channel);
    expect(kinds(replayed)).toEqual(expected);
    expect(replayed.map((e) => e.seq)).toEqual(expected.map((_, i) => cursor + 1n + BigInt(i)));
    expect(marker.frame.case === "resumed" && marker.frame.value).toMatchObject({ replayed: expected.length, complete: true, lastSeq: cursor + BigInt(expected.length) });
    // Replayed as the messages are now: the post shows the edited text; the deleted reply has none.
    const [posted, , , reply] = replayed.map((e) => e.payload);
    expect(posted?.case === "messagePosted" && posted.value.message?.text).toBe("root, edited");
    expect(reply?.case === "messagePosted" && reply.value.message).toMatchObject({ text: "", deleted: true });
    expect(kinds(eventsOf(again.frames.slice(at), channel))).toEqual(["messagePosted"]);
  });
});

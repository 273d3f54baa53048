/** Reconnect and resume: everything missed, once, in order, before new events; bounded with a marker. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerFrame } from "../../gen/chat/v1/frame_pb.js";
import { startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { isEvent, lastSeqOf, postedIds, TestSocket } from "../support/ws-client.js";

let t: TestApi;
let reader: TestUser, writer: TestUser;
let channel: bigint;

beforeAll(async () => {
  t = await startTestApi({ CHAT_GATEWAY_RESUME_LIMIT: "1000" });
  reader = await t.newUser("Reader");
  writer = await t.newUser("Writer");
  channel = (await writer.channels.createChannel({ name: `resume-${Date.now()}` })).channel!.id;
  await reader.channels.joinChannel({ channelId: channel });
});
afterAll(() => t.stop());

async function postMany(n: number, prefix: string): Promise<bigint[]> {
  const ids: bigint[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) => writer.messages.postMessage({ channelId: channel, text: `${prefix}${i + j}` })),
    );
    ids.push(...batch.map((r) => r.message!.id));
  }
  return ids.sort((x, y) => (x < y ? -1 : 1));
}

const resumedOf = (f: ServerFrame) => (f.frame.case === "resumed" ? f.frame.value : undefined);

describe("resume", () => {
  it("replays all 500 messages missed while disconnected, once, in order, before new events", async () => {
    const first = await TestSocket.connect(t.wsUrl, { token: reader.token });
    await first.hello();
    await postMany(1, "seen");
    await first.next(isEvent("messagePosted", channel));
    const seen = lastSeqOf(first.frames, channel);
    await first.close();

    const missed = await postMany(500, "missed");
    // Keep posting while the client reconnects and resumes: live events race the replay.
    let live = true;
    const livePosts: bigint[] = [];
    const liveWriter = (async () => {
      while (live) livePosts.push((await writer.messages.postMessage({ channelId: channel, text: "live" })).message!.id);
    })();

    const second = await TestSocket.connect(t.wsUrl, { token: reader.token, resumeOnConnect: true });
    await second.hello();
    second.send({ frame: { case: "resume", value: { cursors: [{ channelId: channel, lastSeq: seen }] } } });
    const marker = await second.next((f) => f.frame.case === "resumed", 10_000);
    await new Promise((r) => setTimeout(r, 200));
    live = false;
    await liveWriter;
    const lastLive = livePosts.at(-1)!;
    await second.next((f) => isEvent("messagePosted", channel)(f) && postedIds([f])[0] === lastLive, 5000).catch(() => undefined);

    const ids = postedIds(second.frames, channel);
    // Everything after the cursor exactly once, strictly increasing.
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(ids.slice(0, 500)).toEqual(missed);
    const all = [...missed, ...livePosts].sort((x, y) => (x < y ? -1 : 1));
    expect(ids).toEqual(all);
    // The marker comes after the replay, before anything newer than the replay's end.
    const markerIndex = second.frames.indexOf(marker);
    const value = resumedOf(marker)!;
    expect(value.complete).toBe(true);
    expect(value.channelId).toBe(channel);
    // The replay may reach into the live posts; it covers at least the 500.
    expect(value.lastSeq >= seen + 500n).toBe(true);
    const seqs = (frames: ServerFrame[]) => frames.flatMap((f) => (f.frame.case === "event" && f.frame.value.channelId === channel ? [f.frame.value.seq] : []));
    expect(seqs(second.frames.slice(0, markerIndex)).every((seq) => seq > seen && seq <= value.lastSeq)).toBe(true);
    expect(seqs(second.frames.slice(markerIndex)).every((seq) => seq > value.lastSeq)).toBe(true);
    await second.close();
  });

  it("cuts a long catch-up short with a marker that says to page with ListChanges", async () => {
    const bounded = await startTestApi({ CHAT_GATEWAY_RESUME_LIMIT: "100" });
    try {
      const r = await bounded.newUser("R");
      const w = await bounded.newUser("W");
      const ch = (await w.channels.createChannel({ name: `bounded-${Date.now()}` })).channel!.id;
      await r.channels.joinChannel({ channelId: ch });
      const posted: bigint[] = [];
      for (let i = 0; i < 250; i += 50) {
        const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => w.messages.postMessage({ channelId: ch, text: `m${i + j}` })));
        posted.push(...batch.map((b) => b.message!.id));
      }
      posted.sort((x, y) => (x < y ? -1 : 1));
      const s = await TestSocket.connect(bounded.wsUrl, { token: r.token, resumeOnConnect: true });
      await s.hello();
      s.send({ frame: { case: "resume", value: { cursors: [{ channelId: ch, lastSeq: 0n }] } } });
      const marker = resumedOf(await s.next((f) => f.frame.case === "resumed"))!;
      expect(marker).toMatchObject({ replayed: 100, complete: false, lastSeq: 100n });
      expect(postedIds(s.frames, ch)).toEqual(posted.slice(0, 100));
      // The rest is one ListChanges away, from the marker's cursor.
      const rest = await r.events.listChanges({ channelId: ch, afterSeq: marker.lastSeq, limit: 500 });
      expect(rest).toMatchObject({ nextSeq: 250n, hasMore: false, complete: true });
      expect(postedIds(rest.events.map((e) => ({ frame: { case: "event", value: e } }) as ServerFrame), ch)).toEqual(posted.slice(100));
      await s.close();
    } finally {
      await bounded.stop();
    }
  });

  it("rejects cursors for channels that are not the user's, and still resumes the others", async () => {
    const outsider = await t.newUser("Outsider");
    const other = (await outsider.channels.createChannel({ name: `mine-${Date.now()}` })).channel!.id;
    const s = await TestSocket.connect(t.wsUrl, { token: reader.token });
    await s.hello();
    s.send({ frame: { case: "resume", value: { cursors: [{ channelId: other, lastSeq: 0n }, { channelId: channel, lastSeq: 1n << 62n }] } } });
    const error = await s.next((f) => f.frame.case === "error");
    expect(error.frame.case === "error" && error.frame.value.error?.message).toMatch(/not a channel of this session/);
    const marker = resumedOf(await s.next((f) => f.frame.case === "resumed"))!;
    expect(marker).toMatchObject({ channelId: channel, replayed: 0, complete: true });
    await s.close();
  });
});

/** When the bus loses NATS, sockets are asked to reconnect and resume (1012); nothing is lost. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startNatsServer, type RunningNats } from "../../infra/harness/nats-server.js";
import { startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { isEvent, lastSeqOf, postedIds, TestSocket } from "../support/ws-client.js";

let nats: RunningNats;
let port: number;
let t: TestApi;
let u: TestUser;
let channel: bigint;

beforeAll(async () => {
  port = await freePort();
  nats = await startNatsServer({ port });
  t = await startTestApi({ CHAT_BUS: "nats", CHAT_NATS_URL: nats.url, CHAT_SUBJECT_PREFIX: `r${process.pid}` });
  u = await t.newUser("R");
  channel = (await u.channels.createChannel({ name: `reconnect-${Date.now()}` })).channel!.id;
}, 60_000);

afterAll(async () => {
  await t.stop();
  await nats.stop();
});

describe("NATS reconnect", () => {
  it("closes sockets with 1012 when NATS comes back; they resume without loss", async () => {
    const s = await TestSocket.connect(t.wsUrl, { token: u.token });
    await s.hello();
    await u.messages.postMessage({ channelId: channel, text: "before" });
    await s.next(isEvent("messagePosted", channel));
    const seen = lastSeqOf(s.frames, channel);

    await nats.stop();
    const during: bigint[] = [];
    for (let i = 0; i < 5; i++) during.push((await u.messages.postMessage({ channelId: channel, text: `during ${i}` })).message!.id);
    nats = await startNatsServer({ port });

    const { code } = await s.closed;
    expect(code).toBe(1012);
    const again = await TestSocket.connect(t.wsUrl, { token: u.token, resumeOnConnect: true });
    await again.hello();
    again.send({ frame: { case: "resume", value: { cursors: [{ channelId: channel, lastSeq: seen }] } } });
    await again.next((f) => f.frame.case === "resumed");
    expect(postedIds(again.frames, channel)).toEqual(during);
    // Live again over the new NATS connection.
    const { message: after } = await u.messages.postMessage({ channelId: channel, text: "after" });
    await again.next((f) => isEvent("messagePosted", channel)(f) && postedIds([f])[0] === after!.id, 10_000);
    await again.close();
  });
});

/**
 * Ids in JSON are canonical decimals: "0x10", " 12", "012", "1e3", "+5" and
 * unsafe numbers are INVALID_ARGUMENT (naming the field) on every path that
 * carries JSON (Connect unary, Connect GET, JSON streams, socket frames),
 * instead of being read as another id. Binary protobuf has no such forms.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findNonCanonicalInt } from "../../core/canonical-json-ints.js";
import { ClientFrameSchema } from "../../gen/chat/v1/frame_pb.js";
import { ListMessagesRequestSchema } from "../../gen/chat/v1/message_pb.js";
import { startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { TestSocket } from "../support/ws-client.js";

let t: TestApi;
let ada: TestUser;
let channelId: bigint;
beforeAll(async () => {
  t = await startTestApi();
  ada = await t.newUser();
  // Channel ids are large; make channel 16's "0x10" meaningful by posting into a real one too.
  channelId = (await ada.channels.createChannel({ name: `canon-${Date.now()}` })).channel!.id;
});
afterAll(() => t.stop());

const BAD = ["0x10", " 12", "12 ", "012", "1e3", "+5", "-0x1", "1.0"];

describe("canonical ids", () => {
  it("the checker accepts canonical forms and names the first bad field", () => {
    expect(findNonCanonicalInt(ListMessagesRequestSchema, { channelId: "123", before: 5, limit: 3 })).toBeUndefined();
    expect(findNonCanonicalInt(ListMessagesRequestSchema, { channelId: "0", after: "9007199254740993" })).toBeUndefined();
    expect(findNonCanonicalInt(ListMessagesRequestSchema, { channelId: "12", before: "0x10" })).toEqual({ path: "before", value: "0x10" });
    expect(findNonCanonicalInt(ListMessagesRequestSchema, { channel_id: 2 ** 60 })).toEqual({ path: "channel_id", value: 2 ** 60 });
    expect(
      findNonCanonicalInt(ClientFrameSchema, { resume: { cursors: [{ channelId: "1", lastSeq: "2" }, { channelId: " 3", lastSeq: "4" }] } }),
    ).toEqual({ path: "resume.cursors[1].channel_id", value: " 3" });
  });

  it("are INVALID_ARGUMENT in Connect unary JSON and Connect GET, naming the field", async () => {
    for (const bad of BAD) {
      const res = await fetch(`${t.url}/chat.v1.MessageService/ListMessages`, {
        method: "POST",
        headers: { authorization: `Bearer ${ada.token}`, "content-type": "application/json" },
        body: JSON.stringify({ channelId: bad }),
      });
      expect(res.status, bad).toBe(400);
      expect(await res.json(), bad).toEqual({ code: "invalid_argument", message: `channel_id: not a canonical decimal integer (got ${JSON.stringify(bad)})` });
      const get = new URL(`${t.url}/chat.v1.MessageService/ListMessages`);
      get.searchParams.set("connect", "v1");
      get.searchParams.set("encoding", "json");
      get.searchParams.set("message", JSON.stringify({ channelId: String(channelId), before: bad }));
      const viaGet = await fetch(get, { headers: { authorization: `Bearer ${ada.token}` } });
      expect(viaGet.status, bad).toBe(400);
      expect(((await viaGet.json()) as { message: string }).message).toMatch(/^before: not a canonical decimal integer/);
    }
    // Canonical ids still work, as strings and as safe numbers.
    const ok = await fetch(`${t.url}/chat.v1.MessageService/ListMessages`, {
      method: "POST",
      headers: { authorization: `Bearer ${ada.token}`, "content-type": "application/json" },
      body: JSON.stringify({ channelId: String(channelId), before: 0, limit: 5 }),
    });
    expect(ok.status).toBe(200);
  });

  it("are INVALID_ARGUMENT in a JSON stream (Connect streaming), at the bad message", async () => {
    const envelope = (json: unknown) => {
      const body = Buffer.from(JSON.stringify(json));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(body.length, 1);
      return Buffer.concat([head, body]);
    };
    const res = await fetch(`${t.url}/chat.v1.EventService/Subscribe`, {
      method: "POST",
      headers: { authorization: `Bearer ${ada.token}`, "content-type": "application/connect+json" },
      body: envelope({ cursors: [{ channelId: "0x10", lastSeq: "0" }] }),
    });
    const text = Buffer.from(await res.arrayBuffer()).toString("utf8");
    expect(text).toContain('"code":"invalid_argument"');
    expect(text).toContain("cursors[0].channel_id: not a canonical decimal integer");
  });

  it("are an error frame on the socket, and nothing is posted", async () => {
    const socket = await TestSocket.connect(t.wsUrl, { token: ada.token, format: "json" });
    await socket.hello();
    socket.ws.send(JSON.stringify({ post: { channelId: ` ${channelId}`, text: "should not land", clientMsgId: "canon-1" } }));
    const error = await socket.next((f) => f.frame.case === "error");
    expect(error.frame.case === "error" && error.frame.value.error?.message).toMatch(/post\.channel_id: not a canonical decimal integer/);
    await socket.close();
    const { messages } = await ada.messages.listMessages({ channelId });
    expect(messages.map((m) => m.text)).not.toContain("should not land");
  });
});

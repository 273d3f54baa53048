/**
 * FAST channels on NATS: messages are delivered before they are stored, and
 * the JetStream write-behind log keeps them when the API process that
 * delivered them dies. Real Cassandra and nats-server (global setup).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DeliveryMode } from "../../gen/chat/v1/channel_pb.js";
import { MessageOrder } from "../../gen/chat/v1/message_pb.js";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { clientsOf, clusterEnv, createUser, tearDown } from "../support/cluster.js";
import { isEvent, postedIds, TestSocket } from "../support/ws-client.js";

const { admin: ADMIN, keyspace, env: shared } = clusterEnv("fastlog");
const dir = mkdtempSync(path.join(tmpdir(), "chat-fastlog-"));
const processes: ChatProcess[] = [];
const start = async (env: Record<string, string>, role: "api" | "gateway") => {
  const p = await startChatProcess({ ...shared, CHAT_DATA_DIR: dir, ...env }, ["--role", role]);
  processes.push(p);
  return p;
};

afterAll(async () => {
  await tearDown(processes, keyspace);
  rmSync(dir, { recursive: true, force: true });
});

describe("FAST channels through the JetStream write-behind log", () => {
  it("keeps every delivered message when the API process that delivered them dies before anything was stored", async () => {
    // Neither A nor B writes the log into the store: until C starts, delivered messages live only in the stream.
    const nodeA = await start({ CHAT_NODE_ID: "11", CHAT_FAST_LOG_WRITER: "false" }, "api");
    const nodeB = await start({ CHAT_NODE_ID: "12", CHAT_FAST_LOG_WRITER: "false" }, "api");
    const gateway = await start({ CHAT_API_URL: nodeB.url }, "gateway");

    const admin = clientsOf(nodeA.url, ADMIN);
    const ana = await createUser(admin, "Ana");
    const ben = await createUser(admin, "Ben");
    const anaOnA = clientsOf(nodeA.url, ana.token);
    const { channel } = await anaOnA.channels.createChannel({ name: `fast-${Date.now()}`, delivery: DeliveryMode.FAST });
    const channelId = channel!.id;
    await clientsOf(nodeB.url, ben.token).channels.joinChannel({ channelId });
    const socket = await TestSocket.connect(gateway.gatewayUrls[0]!, { token: ben.token });
    await socket.hello();
    await new Promise((r) => setTimeout(r, 200));

    const posted: bigint[] = [];
    for (let i = 0; i < 20; i++) {
      const answer = await anaOnA.messages.postMessage({ channelId, text: `f${i}`, clientMsgId: `f${i}` });
      expect(answer.duplicate).toBe(false);
      posted.push(answer.message!.id);
    }
    expect(postedIds(await socket.collect(isEvent("messagePosted", channelId), 20))).toEqual(posted);
    nodeA.child.kill("SIGKILL");
    await nodeA.exited;

    const anaOnB = clientsOf(nodeB.url, ana.token);
    const history = async () =>
      (await anaOnB.messages.listMessages({ channelId, limit: 100, order: MessageOrder.OLDEST_FIRST })).messages;
    expect(await history()).toEqual([]);

    // A retry of an acknowledged post, on another node, before it is stored: the stream knows it.
    const retry = await anaOnB.messages.postMessage({ channelId, text: "f3", clientMsgId: "f3" });
    expect(retry.duplicate).toBe(true);
    expect(retry.message!.id).toBe(posted[3]);

    // A writer starts elsewhere and drains the log into Cassandra.
    const nodeC = await start({ CHAT_NODE_ID: "13" }, "api");
    let stored = await history();
    for (let i = 0; i < 100 && stored.length < posted.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stored = await history();
    }
    expect(stored.map((m) => m.id)).toEqual(posted);
    expect(stored.map((m) => m.text)).toEqual(posted.map((_, i) => `f${i}`));

    // New FAST posts flow through C's writer; a retry after storing is answered from the store.
    const anaOnC = clientsOf(nodeC.url, ana.token);
    const later = await anaOnC.messages.postMessage({ channelId, text: "later", clientMsgId: "later" });
    expect(postedIds(await socket.collect(isEvent("messagePosted", channelId), 21))).toEqual([...posted, later.message!.id]);
    for (let i = 0; i < 100 && (await history()).length < 21; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await history()).map((m) => m.id)).toEqual([...posted, later.message!.id]);
    const again = await anaOnC.messages.postMessage({ channelId, text: "f0", clientMsgId: "f0" });
    expect(again).toMatchObject({ duplicate: true, message: { id: posted[0] } });
    await socket.close();
  });

  it("applies an edit that races the write-behind after the write, never under it, and delivers each post once", async () => {
    // No writer at first: the post is acknowledged (JetStream has it) and not stored.
    const writerless = await start({ CHAT_NODE_ID: "21", CHAT_FAST_LOG_WRITER: "false" }, "api");
    const gateway = await start({ CHAT_API_URL: writerless.url }, "gateway");
    const admin = clientsOf(writerless.url, ADMIN);
    const ana = await createUser(admin, "Ana");
    const ben = await createUser(admin, "Ben");
    const anaOn = clientsOf(writerless.url, ana.token);
    const { channel } = await anaOn.channels.createChannel({ name: `fast-edit-${Date.now()}`, delivery: DeliveryMode.FAST });
    const channelId = channel!.id;
    await clientsOf(writerless.url, ben.token).channels.joinChannel({ channelId });
    const socket = await TestSocket.connect(gateway.gatewayUrls[0]!, { token: ben.token });
    await socket.hello();
    await new Promise((r) => setTimeout(r, 200));

    const { message } = await anaOn.messages.postMessage({ channelId, text: "draft" });
    const editing = anaOn.messages.editMessage({ channelId, messageId: message!.id, text: "final" });
    // The edit waits for the write; a writer starts meanwhile and stores the post.
    await start({ CHAT_NODE_ID: "22" }, "api");
    const { message: edited } = await editing;
    expect(edited).toMatchObject({ id: message!.id, text: "final" });

    const history = async () => (await anaOn.messages.listMessages({ channelId, limit: 10 })).messages;
    expect((await history()).map((m) => m.text)).toEqual(["final"]);
    // A redelivered record (the write-behind's at-least-once) cannot undo the edit either.
    await new Promise((r) => setTimeout(r, 500));
    expect((await history()).map((m) => [m.text, m.editedAt !== undefined])).toEqual([["final", true]]);
    await socket.next(isEvent("messageEdited", channelId), 5000);
    await new Promise((r) => setTimeout(r, 300));
    // The post once: its preview, not also the sequenced copy the writer published.
    expect(postedIds(socket.frames, channelId)).toEqual([message!.id]);
    await socket.close();
  });
});

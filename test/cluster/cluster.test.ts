/**
 * The system as a cluster on real servers: two API processes and two gateway
 * processes over Cassandra and NATS (started by test/support/global-setup.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageOrder } from "../../gen/chat/v1/message_pb.js";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { clientsOf, clusterEnv, createUser, tearDown } from "../support/cluster.js";
import { isEvent, lastSeqOf, postedIds, TestSocket } from "../support/ws-client.js";

const { admin: ADMIN, keyspace, env: shared } = clusterEnv("cluster");
const dir = mkdtempSync(path.join(tmpdir(), "chat-cluster-"));
const apis: ChatProcess[] = [];
const gateways: ChatProcess[] = [];

beforeAll(async () => {
  for (const node of [1, 2]) {
    // No CHAT_NODE_ID: each API node leases a free one.
    apis.push(await startChatProcess({ ...shared, CHAT_DATA_DIR: path.join(dir, `api${node}`) }, ["--role", "api"]));
  }
  for (const api of apis) {
    gateways.push(await startChatProcess({ ...shared, CHAT_API_URL: api.url, CHAT_DATA_DIR: dir }, ["--role", "gateway"]));
  }
}, 120_000);

afterAll(async () => {
  await tearDown([...gateways, ...apis], keyspace);
  rmSync(dir, { recursive: true, force: true });
});

describe("cluster: 2 API nodes + 2 gateways on Cassandra and NATS", () => {
  it("delivers across nodes, serves identical history from both API nodes, opens one DM from both sides, and survives a gateway's death", async () => {
    const admin = clientsOf(apis[0]!.url, ADMIN);
    const ana = await createUser(admin, "Ana");
    const ben = await createUser(admin, "Ben");
    const anaOn1 = clientsOf(apis[0]!.url, ana.token);
    const benOn2 = clientsOf(apis[1]!.url, ben.token);

    // One DM, opened from both sides on different API nodes at once.
    const [d1, d2] = await Promise.all([
      anaOn1.channels.openDirectMessage({ userId: ben.id }),
      benOn2.channels.openDirectMessage({ userId: ana.id }),
    ]);
    expect(d1.channel!.id).toBe(d2.channel!.id);
    expect([d1.created, d2.created].filter(Boolean)).toHaveLength(1);
    const dm = d1.channel!.id;

    // Sockets on both gateways.
    const socketA = await TestSocket.connect(gateways[0]!.gatewayUrls[0]!, { token: ana.token });
    const socketB = await TestSocket.connect(gateways[1]!.gatewayUrls[0]!, { token: ben.token });
    await Promise.all([socketA.hello(), socketB.hello()]);
    await new Promise((r) => setTimeout(r, 200));

    // Posts through both API nodes reach sockets on both gateways, in order.
    const posted: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const via = i % 2 === 0 ? anaOn1 : benOn2;
      posted.push((await via.messages.postMessage({ channelId: dm, text: `m${i}`, clientMsgId: `m${i}` })).message!.id);
    }
    for (const s of [socketA, socketB]) expect(postedIds(await s.collect(isEvent("messagePosted", dm), 10))).toEqual(posted);
    // The two nodes leased different node ids (bits 12..21 of every id).
    const nodeOf = (id: bigint) => Number((id >> 12n) & 1023n);
    expect(new Set(posted.map(nodeOf)).size).toBe(2);
    const leased = apis.map((p) => p.logs.find((l) => l.msg === "node id leased")?.nodeId);
    expect(new Set(posted.map(nodeOf))).toEqual(new Set(leased));

    // Idempotency keys are per sender: the same key from Ana is a new message; a retry of
    // Ben's post through the other API node is his original.
    const retry = await anaOn1.messages.postMessage({ channelId: dm, text: "m1", clientMsgId: "m1" });
    expect(retry.message!.id).not.toBe(posted[1]); // m1 was Ben's key, not Ana's
    const benRetry = await clientsOf(apis[0]!.url, ben.token).messages.postMessage({ channelId: dm, text: "m1", clientMsgId: "m1" });
    expect(benRetry.duplicate).toBe(true);
    expect(benRetry.message!.id).toBe(posted[1]);

    // Identical history from both API nodes.
    const historyOf = async (c: ReturnType<typeof clientsOf>) =>
      (await c.messages.listMessages({ channelId: dm, limit: 200, order: MessageOrder.OLDEST_FIRST })).messages.map((m) => m.id);
    const h1 = await historyOf(anaOn1);
    expect(await historyOf(benOn2)).toEqual(h1);

    // Gateway 1 dies: Ana reconnects to gateway 2 and resumes without loss.
    const lastSeen = lastSeqOf(socketA.frames, dm);
    gateways[0]!.child.kill("SIGKILL");
    await socketA.closed;
    const missed: bigint[] = [];
    for (let i = 0; i < 5; i++) missed.push((await benOn2.messages.postMessage({ channelId: dm, text: `while away ${i}` })).message!.id);
    const again = await TestSocket.connect(gateways[1]!.gatewayUrls[0]!, { token: ana.token, resumeOnConnect: true });
    await again.hello();
    again.send({ frame: { case: "resume", value: { cursors: [{ channelId: dm, lastSeq: lastSeen }] } } });
    await again.next((f) => f.frame.case === "resumed");
    const replayed = postedIds(again.frames, dm);
    expect(replayed.slice(-5)).toEqual(missed);
    await Promise.all([again.close(), socketB.close()]);
  });
});

/** The API on the Cassandra store (CHAT_STORE=cassandra), against the suite's real Cassandra. */
import cassandra from "cassandra-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageOrder } from "../../gen/chat/v1/message_pb.js";
import { startTestApi, Visibility, type TestApi } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";
import { isEvent, postedIds, TestSocket } from "../support/ws-client.js";

const keyspace = `api_${process.pid}_${Date.now() % 100000}`;
const contactPoint = process.env.CHAT_TEST_CASSANDRA!;
let t: TestApi;

beforeAll(async () => {
  t = await startTestApi({
    CHAT_STORE: "cassandra",
    CHAT_CASSANDRA_CONTACT_POINTS: contactPoint,
    CHAT_CASSANDRA_KEYSPACE: keyspace,
  });
}, 60_000);

afterAll(async () => {
  await t.stop();
  const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1" });
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
});

describe("the API on Cassandra", () => {
  it("creates users with unique emails, channels, DMs, posts idempotently and pages history", async () => {
    const a = await t.newUser("A");
    const b = await t.newUser("B");
    await expectCode(t.admin.users.createUser({ name: "dup", email: a.email }), Code.AlreadyExists);
    const { channel } = await a.channels.createChannel({ name: `cass-${Date.now()}`, visibility: Visibility.PRIVATE });
    await a.channels.addMember({ channelId: channel!.id, userId: b.id });
    const dms = await Promise.all([a.channels.openDirectMessage({ userId: b.id }), b.channels.openDirectMessage({ userId: a.id })]);
    expect(dms[0].channel!.id).toBe(dms[1].channel!.id);

    const socket = await TestSocket.connect(t.wsUrl, { token: b.token });
    await socket.hello();
    const ids: bigint[] = [];
    for (let i = 0; i < 120; i += 40) {
      const batch = await Promise.all(
        Array.from({ length: 40 }, (_, j) => a.messages.postMessage({ channelId: channel!.id, text: `c${i + j}`, clientMsgId: `k${i + j}` })),
      );
      ids.push(...batch.map((r) => r.message!.id));
    }
    ids.sort((x, y) => (x < y ? -1 : 1));
    const retry = await a.messages.postMessage({ channelId: channel!.id, text: "c0", clientMsgId: "k0" });
    expect(retry.duplicate).toBe(true);

    const walked: bigint[] = [];
    let before = 0n;
    for (;;) {
      const page = await b.messages.listMessages({ channelId: channel!.id, limit: 50, before });
      walked.push(...page.messages.map((m) => m.id));
      if (!page.hasMore) break;
      before = page.nextCursor;
    }
    expect(walked.reverse()).toEqual(ids);
    const oldest = await b.messages.listMessages({ channelId: channel!.id, limit: 10, order: MessageOrder.OLDEST_FIRST });
    expect(oldest.messages.map((m) => m.id)).toEqual(ids.slice(0, 10));
    expect(postedIds(await socket.collect(isEvent("messagePosted", channel!.id), 120))).toEqual(ids);
    await socket.close();
  });
});

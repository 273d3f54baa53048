import cassandra from "cassandra-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeLog, type NewChange } from "../../store/cassandra/change-log.js";
import { createCassandraStore, type CassandraChatStore } from "../../store/cassandra/cassandra-store.js";
import type { Cql } from "../../store/cassandra/cql.js";
import { describeStoreContract, message } from "./store-contract.js";

/** The suite's real Cassandra (test/support/global-setup.ts); a keyspace of this run's own. */
const keyspace = `contract_${process.pid}_${Date.now() % 100000}`;
const contactPoint = process.env.CHAT_TEST_CASSANDRA!;

const open = () =>
  createCassandraStore({
    contactPoints: [contactPoint],
    localDataCenter: "datacenter1",
    keyspace,
    replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}",
  });

/** The store's own client and keyspace, as the store's modules reach them (without its availability tracking). */
function cqlOf(store: CassandraChatStore): Cql {
  const text = (cql: string) => cql.replaceAll("{ks}", store.keyspace);
  const q = (cql: string, params: unknown[] = []) => store.client.execute(text(cql), params, { prepare: true });
  return {
    q,
    qSoon: q,
    qAll: async (cql, params) => (await q(cql, params)).rows,
    batch: (statements) => store.client.batch(statements.map((s) => ({ query: text(s.cql), params: s.params })), { prepare: true }),
  };
}

// Before the contract, whose cleanup drops the keyspace at the end.
describe("Cassandra change log across chunks", () => {
  let store: CassandraChatStore;
  beforeAll(async () => {
    store = await open();
  });
  afterAll(async () => {
    await store.close();
  });

  it("numbers densely across chunk boundaries from two nodes at once, pages across chunks, and a cold store finds the head", async () => {
    // Chunks of 5 seqs, so that batches meet a boundary every few entries.
    const [a, b] = [new ChangeLog(cqlOf(store), 5n), new ChangeLog(cqlOf(store), 5n)];
    const channelId = BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6));
    const entry = (messageId: number): NewChange => ({ kind: "edited", messageId: BigInt(messageId), actorId: 1n, emoji: "", at: messageId });
    // 30 calls of 1, 2 or 3 entries each: 60 entries, 12 chunks.
    const calls = Array.from({ length: 30 }, (_, i) => Array.from({ length: 1 + (i % 3) }, (_, j) => entry(i * 10 + j)));
    const answered = await Promise.all(calls.map((entries, i) => (i % 2 === 0 ? a : b).append(channelId, entries)));

    const listed = await a.list(channelId, 0n, 1000);
    expect(listed.map((c) => c.seq)).toEqual(Array.from({ length: 60 }, (_, i) => BigInt(i + 1)));
    // Every call was answered with its own entries, in its order, as they are listed.
    answered.forEach((changes, i) => {
      expect(changes.map((c) => c.messageId)).toEqual(calls[i]!.map((e) => e.messageId));
      for (const c of changes) expect(listed[Number(c.seq) - 1]).toEqual(c);
    });
    expect(await b.list(channelId, 3n, 9)).toEqual(listed.slice(3, 12));
    expect(await b.list(channelId, 55n, 100)).toEqual(listed.slice(55));
    expect(await b.list(channelId, 60n, 100)).toEqual([]);

    // A store that never saw the channel continues after the last seq.
    const cold = new ChangeLog(cqlOf(store), 5n);
    const [next] = await cold.append(channelId, [entry(999)]);
    expect(next?.seq).toBe(61n);
    expect((await a.append(channelId, [entry(1000)]))[0]?.seq).toBe(62n);
    expect(await a.historyRevision(channelId)).toBe(62n);
  });

  it("logs one store's posts of a channel in the order they were appended, however their writes finish", async () => {
    const channelId = BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6));
    // Every third carries a key: its claim (an LWT) makes its writes finish later than the others'.
    const posts = Array.from({ length: 60 }, (_, i) => message(channelId, 7n, `m${i}`, i % 3 === 0 ? `k${i}-${channelId}` : ""));
    await Promise.all(posts.map((m) => store.appendMessage(m)));
    const { changes } = await store.listChanges(channelId, 0n, 100);
    expect(changes.map((c) => c.messageId)).toEqual(posts.map((m) => m.id));
  });
});

describeStoreContract("cassandra", {
  create: open,
  // A second store on the same keyspace, with its own client and caches, as a second API node opens it.
  peer: open,
  async cleanup() {
    const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1" });
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await client.shutdown();
  },
});

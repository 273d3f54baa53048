/** The suite's real Cassandra (started by test/support/global-setup.ts) answers CQL. */
import cassandra from "cassandra-driver";
import { describe, expect, it } from "vitest";
import { CASSANDRA_VERSION } from "../../infra/harness/cassandra.js";

describe("test Cassandra", () => {
  it(`is a Cassandra ${CASSANDRA_VERSION} node on loopback that takes schema changes and lightweight transactions`, async () => {
    const contactPoint = process.env.CHAT_TEST_CASSANDRA;
    expect(contactPoint, "CHAT_TEST_CASSANDRA is set by the global setup").toMatch(/^127\.0\.0\.1:\d+$/);
    const client = new cassandra.Client({
      contactPoints: [contactPoint!],
      localDataCenter: "datacenter1",
      encoding: { useBigIntAsLong: true, useBigIntAsVarint: true },
    });
    try {
      const local = await client.execute("SELECT release_version FROM system.local");
      expect(local.first().get("release_version")).toBe(CASSANDRA_VERSION);
      const ks = `smoke_${process.pid}`;
      await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
      await client.execute(`CREATE TABLE IF NOT EXISTS ${ks}.pairs (pair text PRIMARY KEY, channel_id bigint)`);
      const first = await client.execute(`INSERT INTO ${ks}.pairs (pair, channel_id) VALUES (?, ?) IF NOT EXISTS`, ["1:2", 10n], { prepare: true });
      const second = await client.execute(`INSERT INTO ${ks}.pairs (pair, channel_id) VALUES (?, ?) IF NOT EXISTS`, ["1:2", 11n], { prepare: true });
      expect(first.wasApplied()).toBe(true);
      expect(second.wasApplied()).toBe(false);
      expect(String(second.first().get("channel_id"))).toBe("10");
      await client.execute(`DROP KEYSPACE ${ks}`);
    } finally {
      await client.shutdown();
    }
  });
});

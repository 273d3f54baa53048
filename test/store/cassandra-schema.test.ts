/** The versioned CQL schema, applied to the suite's real Cassandra. */
import cassandra from "cassandra-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applySchema, readSchemaFiles } from "../../store/cassandra/migrations.js";

const keyspace = `schema_${process.pid}_${Date.now() % 100000}`;
const replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
let client: cassandra.Client;

beforeAll(() => {
  client = new cassandra.Client({
    contactPoints: [process.env.CHAT_TEST_CASSANDRA!],
    localDataCenter: "datacenter1",
    encoding: { useBigIntAsLong: true },
  });
});
afterAll(async () => {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
});

describe("Cassandra schema", () => {
  it("applies every version once, also when two nodes start at once", async () => {
    const versions = readSchemaFiles(keyspace).map((f) => f.version);
    expect(versions[0]).toBe(1);
    const [a, b] = await Promise.all([applySchema(client, { keyspace, replication }), applySchema(client, { keyspace, replication })]);
    expect([...a, ...b].sort()).toEqual(versions);
    expect(await applySchema(client, { keyspace, replication })).toEqual([]);
    const tables = await client.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [keyspace], { prepare: true });
    expect(tables.rows.map((r) => r.get("table_name") as string).sort()).toEqual(
      [
        "channel_change_chunks",
        "channel_changes",
        "channel_names",
        "channel_pins",
        "channel_revisions",
        "channels",
        "direct_pairs",
        "memberships_by_channel",
        "memberships_by_user",
        "message_buckets",
        "message_keys",
        "messages",
        "node_leases",
        "reactions",
        "reactions_by_user",
        "schema_versions",
        "thread_replies",
        "user_directory",
        "users",
        "users_by_email",
      ].sort(),
    );
    const messages = await client.execute(
      "SELECT column_name, kind, clustering_order FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'messages'",
      [keyspace],
      { prepare: true },
    );
    const kinds = Object.fromEntries(messages.rows.map((r) => [r.get("column_name"), `${r.get("kind")}/${r.get("clustering_order")}`]));
    expect(kinds).toMatchObject({ channel_id: "partition_key/none", bucket: "partition_key/none", id: "clustering/desc" });
  });

  it("refuses keyspace names that are not CQL identifiers", async () => {
    await expect(applySchema(client, { keyspace: "bad-name; DROP", replication })).rejects.toThrow(/not a valid CQL identifier/);
  });
});

import cassandra from "cassandra-driver";
import { createCassandraStore } from "../../store/cassandra/cassandra-store.js";
import { describeStoreContract } from "./store-contract.js";

/** The suite's real Cassandra (test/support/global-setup.ts); a keyspace of this run's own. */
const keyspace = `contract_${process.pid}_${Date.now() % 100000}`;
const contactPoint = process.env.CHAT_TEST_CASSANDRA!;

describeStoreContract("cassandra", {
  create: () =>
    createCassandraStore({
      contactPoints: [contactPoint],
      localDataCenter: "datacenter1",
      keyspace,
      replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    }),
  async cleanup() {
    const client = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1" });
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await client.shutdown();
  },
});

/** Node id leases (store/cassandra/node-lease.ts) on the suite's real Cassandra, in a keyspace of this run's own. */
import cassandra from "cassandra-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdGenerator, timestampOfId } from "../../core/ids.js";
import { createCassandraStore, type CassandraChatStore } from "../../store/cassandra/cassandra-store.js";
import { applySchema } from "../../store/cassandra/migrations.js";
import {
  claimNodeLease,
  NodeIdTakenError,
  NodeLeaseLostError,
  NoFreeNodeIdError,
  type NodeLease,
  type NodeLeaseOptions,
} from "../../store/cassandra/node-lease.js";

const suffix = `${process.pid}_${Date.now() % 100000}`;
const keyspace = `lease_${suffix}`;
const fullKeyspace = `lease_full_${suffix}`;
const replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
const contactPoint = process.env.CHAT_TEST_CASSANDRA!;
/** Reads that see every committed lease transaction, and the test's own lease transactions. */
const serialRead = { prepare: true, consistency: cassandra.types.consistencies.serial };
const lwt = { prepare: true, serialConsistency: cassandra.types.consistencies.serial };

let store: CassandraChatStore;
const held: NodeLease[] = [];

const newClient = () => new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: "datacenter1", encoding: { useBigIntAsLong: true } });

/** A claim on the store's own client, released after the file if a test leaves it held. */
async function claim(options: Partial<NodeLeaseOptions> = {}): Promise<NodeLease> {
  const lease = await claimNodeLease({ client: store.client, keyspace: store.keyspace, owner: "test", onLost: () => {}, ...options });
  held.push(lease);
  return lease;
}

async function row(nodeId: number, ks = keyspace): Promise<{ owner: string | null; lastIdMs: number | null }> {
  const r = (await store.client.execute(`SELECT owner, last_id_ms FROM ${ks}.node_leases WHERE node_id = ?`, [nodeId], serialRead)).first();
  const last = r?.get("last_id_ms") as bigint | null | undefined;
  return { owner: (r?.get("owner") as string | null | undefined) ?? null, lastIdMs: last == null ? null : Number(last) };
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The store's real client, with its lease queries failing on demand (a
 * store that cannot be reached, for this holder only): a fault injected in
 * front of the real Cassandra, not a stand-in for it.
 */
function faultyClient(): { client: cassandra.Client; failing: boolean } {
  const faults = { failing: false, client: undefined as unknown as cassandra.Client };
  const real = store.client;
  const unreachable = () => Promise.reject(new Error("injected: store unreachable"));
  faults.client = {
    batch: (...args: Parameters<cassandra.Client["batch"]>) => (faults.failing ? unreachable() : real.batch(...args)),
    execute: (...args: Parameters<cassandra.Client["execute"]>) => (faults.failing ? unreachable() : real.execute(...args)),
  } as unknown as cassandra.Client;
  return faults;
}

beforeAll(async () => {
  store = await createCassandraStore({ contactPoints: [contactPoint], localDataCenter: "datacenter1", keyspace, replication });
});

afterAll(async () => {
  await Promise.allSettled(held.map((l) => l.release(0)));
  await store?.close();
  const client = newClient();
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.execute(`DROP KEYSPACE IF EXISTS ${fullKeyspace}`);
  await client.shutdown();
});

describe("node id leases on Cassandra", () => {
  it("give concurrent claims different node ids, and one requested id to exactly one claimant", async () => {
    const leases = await Promise.all(Array.from({ length: 6 }, () => claim()));
    expect(new Set(leases.map((l) => l.nodeId)).size).toBe(6);
    for (const l of leases) expect((await row(l.nodeId)).owner).toBe(l.owner);
    await Promise.all(leases.map((l) => l.release(Date.now())));

    const results = await Promise.allSettled(Array.from({ length: 5 }, () => claim({ requested: 17 })));
    const won = results.filter((r): r is PromiseFulfilledResult<NodeLease> => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(NodeIdTakenError);
    await won[0]!.value.release(Date.now());
  });

  it("refuse a requested node id held by another owner, naming the owner", async () => {
    const first = await claim({ requested: 3, owner: "api-a" });
    expect(first.nodeId).toBe(3);
    expect(first.owner).toMatch(/^api-a\//);
    const refused = await claim({ requested: 3, owner: "api-b" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NodeIdTakenError);
    expect((refused as NodeIdTakenError).name).toBe("NodeIdTakenError");
    expect((refused as NodeIdTakenError).owner).toBe(first.owner);
    expect((refused as Error).message).toContain("node id 3");
    expect((refused as Error).message).toContain(first.owner);
    // Without a requested id, another node gets another id.
    const other = await claim({ owner: "api-b" });
    expect(other.nodeId).not.toBe(3);
    await Promise.all([first.release(Date.now()), other.release(Date.now())]);
  });

  it("free a node id on release, and hand the released last id ms to the next holder", async () => {
    const first = await claim({ requested: 5 });
    // The first holder's clock ran a minute ahead of the next holder's.
    const released = Date.now() + 60_000;
    await first.release(released);
    await first.release(released + 1); // idempotent
    expect(await row(5)).toEqual({ owner: null, lastIdMs: released });

    const second = await claim({ requested: 5 });
    expect(second.notBeforeMs).toBeGreaterThanOrEqual(released);
    const ids = createIdGenerator({ nodeId: second.nodeId, notBeforeMs: second.notBeforeMs });
    expect(timestampOfId(ids.next())).toBeGreaterThan(released);
    // While held, the row's mark covers at least the TTL ahead of the holder's clock.
    expect((await row(5)).lastIdMs).toBeGreaterThanOrEqual(released + 30_000);
    await second.release(ids.lastMs());
    expect((await row(5)).lastIdMs).toBe(ids.lastMs());
  });

  it("record the generator's last id ms on every renewal, and stop renewing once released", async () => {
    const ahead = Date.now() + 600_000;
    let lost = 0;
    const lease = await claim({ requested: 6, ttlSeconds: 3, renewIntervalMs: 200, lastIdMs: () => ahead, onLost: () => lost++ });
    await waitFor(async () => ((await row(6)).lastIdMs ?? 0) >= ahead + 3000, 5000);
    await lease.release(ahead);
    // The release records the exact last id ms: nothing is minted after it.
    expect(await row(6)).toEqual({ owner: null, lastIdMs: ahead });
    await new Promise((r) => setTimeout(r, 700));
    expect((await row(6)).owner).toBeNull();
    expect(lost).toBe(0);
  });

  it("let another node claim a lease whose holder stopped renewing, once its TTL lapsed, after the holder stopped minting", async () => {
    const client = newClient();
    let lostAt = 0;
    let lostError: unknown;
    const claimedAt = Date.now();
    const stale = await claimNodeLease({
      client,
      keyspace,
      owner: "cut-off",
      requested: 9,
      ttlSeconds: 3,
      renewIntervalMs: 200,
      onLost: () => {},
      onSuspended: (e) => {
        lostAt = Date.now();
        lostError = e;
      },
    });
    await new Promise((r) => setTimeout(r, 500));
    await client.shutdown(); // from here on every renewal fails
    let next: NodeLease | undefined;
    let nextTriedAt = 0;
    await waitFor(async () => {
      nextTriedAt = Date.now();
      next = await claim({ requested: 9 }).catch((e: unknown) => {
        if (e instanceof NodeIdTakenError) return undefined;
        throw e;
      });
      return next !== undefined;
    }, 10_000);
    // The old holder heard it must stop minting before the new one could claim.
    expect(lostAt).toBeGreaterThan(0);
    expect(stale.mintable).toBe(false);
    expect(lostAt).toBeLessThanOrEqual(nextTriedAt);
    expect(lostError).toBeInstanceOf(NodeLeaseLostError);
    expect((lostError as Error).message).toMatch(/node id 9.*not renewed/);
    // The cut-off holder could have minted up to its last renewal + TTL: the next one starts after.
    expect(next!.notBeforeMs).toBeGreaterThanOrEqual(claimedAt + 3000);
    await next!.release(Date.now());
    await stale.release(0).catch(() => {}); // its client is gone
  });

  it("suspend a lease whose renewals fail past its deadline, and resume it when the store answers, re-claiming its expired row", async () => {
    const faults = faultyClient();
    const events: string[] = [];
    const lease = await claimNodeLease({
      client: faults.client,
      keyspace,
      owner: "blip",
      requested: 20,
      ttlSeconds: 3,
      renewIntervalMs: 200,
      onLost: () => events.push("lost"),
      onSuspended: () => events.push("suspended"),
      onResumed: () => events.push("resumed"),
    });
    held.push(lease);
    expect(lease.mintable).toBe(true);
    const before = (await row(20)).lastIdMs!;
    faults.failing = true;
    await waitFor(() => events.includes("suspended"), 5000);
    expect(lease.mintable).toBe(false);
    // The row expires while the store is "away" for this holder.
    await waitFor(async () => (await row(20)).owner === null, 6000);
    faults.failing = false;
    await waitFor(() => events.includes("resumed"), 5000);
    expect(events).toEqual(["suspended", "resumed"]);
    expect(lease.mintable).toBe(true);
    const after = await row(20);
    expect(after.owner).toBe(lease.owner);
    expect(after.lastIdMs).toBeGreaterThanOrEqual(before);
    await lease.release(Date.now());
  });

  it("resume a suspended lease by renewal when the store answers before its row expired", async () => {
    const faults = faultyClient();
    const events: string[] = [];
    const lease = await claimNodeLease({
      client: faults.client,
      keyspace,
      owner: "short-blip",
      requested: 21,
      ttlSeconds: 4,
      renewIntervalMs: 200,
      onLost: () => events.push("lost"),
      onSuspended: () => events.push("suspended"),
      onResumed: () => events.push("resumed"),
    });
    held.push(lease);
    faults.failing = true;
    // The deadline (ttl minus a 2 s margin after the last renewal sent) comes before the row's expiry.
    await waitFor(() => events.includes("suspended"), 5000);
    faults.failing = false;
    await waitFor(() => events.includes("resumed"), 3000);
    expect(events).toEqual(["suspended", "resumed"]);
    expect((await row(21)).owner).toBe(lease.owner);
    await lease.release(Date.now());
  });

  it("lose a suspended lease whose node id another node claimed while the store was away", async () => {
    const faults = faultyClient();
    const lost: NodeLeaseLostError[] = [];
    const lease = await claimNodeLease({
      client: faults.client,
      keyspace,
      owner: "away",
      requested: 22,
      ttlSeconds: 3,
      renewIntervalMs: 200,
      onLost: (e) => lost.push(e),
    });
    held.push(lease);
    faults.failing = true;
    let other: NodeLease | undefined;
    await waitFor(async () => {
      other = await claim({ requested: 22 }).catch(() => undefined);
      return other !== undefined;
    }, 8000);
    faults.failing = false;
    await waitFor(() => lost.length > 0, 5000);
    expect(lost[0]!.message).toMatch(/node id 22.*taken over by test\//);
    expect(lease.mintable).toBe(false);
    await other!.release(Date.now());
  });

  it("report a lease taken over or deleted on the next renewal, once", async () => {
    const lost: NodeLeaseLostError[] = [];
    const a = await claim({ requested: 11, ttlSeconds: 3, renewIntervalMs: 100, onLost: (e) => lost.push(e) });
    const over = await store.client.execute(
      `UPDATE ${keyspace}.node_leases SET owner = 'intruder' WHERE node_id = ? IF owner = ?`,
      [11, a.owner],
      lwt,
    );
    expect(over.wasApplied()).toBe(true);
    await waitFor(() => lost.length > 0, 2000);
    expect(lost[0]!.message).toMatch(/node id 11.*taken over by intruder/);
    // Releasing a lost lease leaves the new owner alone.
    await a.release(Date.now());
    expect((await row(11)).owner).toBe("intruder");

    const lostB: NodeLeaseLostError[] = [];
    const b = await claim({ requested: 12, ttlSeconds: 3, renewIntervalMs: 100, onLost: (e) => lostB.push(e) });
    expect((await store.client.execute(`DELETE FROM ${keyspace}.node_leases WHERE node_id = ? IF EXISTS`, [12], lwt)).wasApplied()).toBe(true);
    await waitFor(() => lostB.length > 0, 2000);
    expect(lostB[0]!.message).toMatch(/node id 12.*gone/);
    await new Promise((r) => setTimeout(r, 400));
    expect(lostB).toHaveLength(1);
    expect(lost).toHaveLength(1);
    await b.release(Date.now());
  });

  it("throw NoFreeNodeIdError when every node id is held", async () => {
    await applySchema(store.client, { keyspace: fullKeyspace, replication });
    const ids = Array.from({ length: 1024 }, (_, i) => i);
    for (let i = 0; i < ids.length; i += 128) {
      await Promise.all(
        ids
          .slice(i, i + 128)
          .map((id) => store.client.execute(`INSERT INTO ${fullKeyspace}.node_leases (node_id, owner) VALUES (?, 'filler')`, [id], { prepare: true })),
      );
    }
    const refused = await claimNodeLease({ client: store.client, keyspace: fullKeyspace, owner: "late", onLost: () => {} }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NoFreeNodeIdError);
    expect((refused as Error).message).toMatch(/all 1024 node ids are held/);
  });

  it("refuse settings that could not keep a lease", async () => {
    const base = { client: store.client, keyspace, owner: "x", onLost: () => {} };
    await expect(claimNodeLease({ ...base, ttlSeconds: 1 })).rejects.toThrow(RangeError);
    await expect(claimNodeLease({ ...base, ttlSeconds: 3, renewIntervalMs: 2000 })).rejects.toThrow(/renewIntervalMs/);
    await expect(claimNodeLease({ ...base, requested: 1024 })).rejects.toThrow(/node id/);
    await expect(claimNodeLease({ ...base, keyspace: "bad-name; DROP" })).rejects.toThrow(/CQL identifier/);
  });
});

/**
 * A lease on one message-id node id (core/ids.ts), held in Cassandra, so that
 * API nodes sharing a cluster never mint ids with the same node id at the
 * same time, and a later holder of a node id never repeats an earlier
 * holder's id. Table and design: infra/cassandra/schema/002_node_leases.cql.
 *
 * Usage: claim after the store is created, start the id generator with
 * { nodeId, notBeforeMs }, mint only while `mintable`, and on shutdown
 * release(ids.lastMs()) after the last id is minted and before the store
 * closes its client. A claim that fails with a driver error (a timeout) may
 * still have been applied: that row stays held until its TTL lapses.
 *
 * Store outages: when renewals fail until the lease could expire, the lease
 * is suspended (onSuspended; `mintable` is false) but not given up. Renewal
 * goes on; once the store answers, the lease resumes if the row is still
 * ours, or re-claims the node id if it expired and nobody took it
 * (onResumed). Only a node id another node holds now ends it (onLost).
 */
import cassandra from "cassandra-driver";
import { randomInt, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { MAX_NODE_ID } from "../../core/ids.js";
import type { SerialConsistency } from "../../core/config.js";
import type { Logger } from "../../core/logger.js";

const { consistencies } = cassandra.types;

/** A requested node id is held by another live node. */
export class NodeIdTakenError extends Error {
  override name = "NodeIdTakenError";
  constructor(
    readonly nodeId: number,
    readonly owner: string,
  ) {
    super(`node id ${nodeId} is held by ${owner}`);
  }
}

/** Every node id is held: more API nodes than the id layout has room for (or leaked leases not expired yet). */
export class NoFreeNodeIdError extends Error {
  override name = "NoFreeNodeIdError";
  constructor() {
    super(`all ${MAX_NODE_ID + 1} node ids are held by other nodes`);
  }
}

/** The lease ended without release(): ids minted from now on could collide with another node's. */
export class NodeLeaseLostError extends Error {
  override name = "NodeLeaseLostError";
  constructor(
    readonly nodeId: number,
    reason: string,
  ) {
    super(`lease on node id ${nodeId} lost: ${reason}`);
  }
}

export interface NodeLeaseOptions {
  client: cassandra.Client;
  /** The keyspace the schema was applied to (002_node_leases.cql). */
  keyspace: string;
  /**
   * Who claims, for people reading the table and errors (e.g. host/pid). A
   * random suffix makes each lease's owner unique: a restarted process with
   * the same host and pid must not renew or release its predecessor's row.
   */
  owner: string;
  /** Claim exactly this node id, or throw NodeIdTakenError; without it, any free node id. */
  requested?: number;
  /** Lifetime of an unrenewed lease, seconds (at least 3). */
  ttlSeconds?: number;
  /** At most (ttlSeconds * 1000 - LOSS_MARGIN_MS) / 2, so that a failed renewal is retried before the deadline. */
  renewIntervalMs?: number;
  /** Unix ms of the newest id minted under the lease (IdGenerator.lastMs); read on every renewal. */
  lastIdMs?: () => number;
  /** Called once when the lease is lost for good (taken over, or its row deleted): stop minting ids at once. */
  onLost: (error: NodeLeaseLostError) => void;
  /** Called when renewals failed until the lease could expire: stop minting until onResumed. */
  onSuspended?: (error: NodeLeaseLostError) => void;
  /** Called when a suspended lease is held again (renewed, or its node id re-claimed). */
  onResumed?: () => void;
  /**
   * Paxos consistency of the lease's transactions. Default "serial": node ids
   * are global, and LOCAL_SERIAL would let two datacenters grant one node id
   * twice. Claims and renewals are rare, so the cross-datacenter round trip is cheap.
   */
  serialConsistency?: SerialConsistency;
  logger?: Pick<Logger, "info" | "warn">;
}

export interface NodeLease {
  readonly nodeId: number;
  /** Whether ids may be minted now: held and renewed in time (false while suspended, lost or released). */
  readonly mintable: boolean;
  /** The owner string written to the table (options.owner plus a random suffix). */
  readonly owner: string;
  /** Ids minted under this lease must have timestamps above this Unix ms (createIdGenerator's notBeforeMs); 0 if the node id was never held. */
  readonly notBeforeMs: number;
  /**
   * Stops renewing and frees the node id, recording lastIdMs (the generator's
   * lastMs(), taken after the last id was minted) so that the next holder
   * starts after it. Idempotent; does nothing to a row no longer ours.
   */
  release(lastIdMs: number): Promise<void>;
}

/**
 * The holder stops minting this long before its lease could expire: Cassandra
 * computes a TTL's expiry in whole seconds (up to 1 s early), and replicas
 * check it against their own, slightly skewed, clocks.
 */
export const LOSS_MARGIN_MS = 2_000;
/** After a failed renewal, retry sooner than the renew interval: the deadline is near. */
const RETRY_MS = 500;
/** A free row whose high-water mark keeps changing under us (released and re-claimed) is given up after this many tries. */
const CLAIM_TRIES = 5;
const IDENTIFIER = /^[a-z][a-z0-9_]{0,47}$/;

type Claimed = { claimed: true; notBeforeMs: number; highWaterMs: number; sentAt: number; claimedAt: Date };
type Claim = Claimed | { claimed: false; owner: string };

export async function claimNodeLease(options: NodeLeaseOptions): Promise<NodeLease> {
  const { client, keyspace, requested, onLost, logger } = options;
  const ttlSeconds = options.ttlSeconds ?? 30;
  const renewIntervalMs = options.renewIntervalMs ?? 10_000;
  const ttlMs = ttlSeconds * 1000;
  if (!IDENTIFIER.test(keyspace)) throw new Error(`keyspace name ${JSON.stringify(keyspace)} is not a valid CQL identifier`);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 3) throw new RangeError(`ttlSeconds must be an integer of at least 3, got ${ttlSeconds}`);
  if (!(renewIntervalMs > 0 && renewIntervalMs <= (ttlMs - LOSS_MARGIN_MS) / 2)) {
    throw new RangeError(`renewIntervalMs must be from 1 to ${(ttlMs - LOSS_MARGIN_MS) / 2} for a ${ttlSeconds} s TTL, got ${renewIntervalMs}`);
  }
  if (requested !== undefined && !(Number.isInteger(requested) && requested >= 0 && requested <= MAX_NODE_ID)) {
    throw new RangeError(`node id must be an integer from 0 to ${MAX_NODE_ID}, got ${requested}`);
  }
  const owner = `${options.owner}/${randomUUID()}`;
  const lastIdMs = options.lastIdMs ?? (() => 0);
  const table = `${keyspace}.node_leases`;
  const lwt = { prepare: true, serialConsistency: consistencies[options.serialConsistency ?? "serial"] };

  /**
   * One conditional batch: owner under the TTL, the high-water mark without
   * one (it must outlive the owner). The condition includes the mark we
   * believe is there, so that notBeforeMs is exactly what we replaced.
   */
  async function tryClaim(nodeId: number): Promise<Claim> {
    let previous: string | null = null;
    for (let i = 0; i < CLAIM_TRIES; i++) {
      const sentAt = performance.now();
      const claimedAt = new Date();
      const highWaterMs = Math.max(Number(previous ?? 0), claimedAt.getTime()) + ttlMs;
      const result = await client.batch(
        [
          {
            query: `UPDATE ${table} USING TTL ? SET owner = ?, claimed_at = ? WHERE node_id = ? IF owner = null AND last_id_ms = ?`,
            params: [ttlSeconds, owner, claimedAt, nodeId, previous],
          },
          { query: `UPDATE ${table} SET last_id_ms = ? WHERE node_id = ?`, params: [String(highWaterMs), nodeId] },
        ],
        lwt,
      );
      if (result.wasApplied()) return { claimed: true, notBeforeMs: Number(previous ?? 0), highWaterMs, sentAt, claimedAt };
      const current = currentRow(result);
      if (current.owner !== null) return { claimed: false, owner: current.owner };
      // Free, but released or expired with another mark than we assumed: try again with that one.
      previous = current.lastIdMs;
    }
    return { claimed: false, owner: "nodes releasing and re-claiming it right now" };
  }

  async function claimRequested(id: number): Promise<[Claimed, number]> {
    const attempt = await tryClaim(id);
    if (!attempt.claimed) throw new NodeIdTakenError(id, attempt.owner);
    return [attempt, id];
  }

  async function claimAny(): Promise<[Claimed, number]> {
    // One plain scan (at most 1,024 small rows) to skip held ids instead of
    // one Paxos round each. It is only a hint: each candidate is still
    // claimed by compare-and-set, so a stale read costs a retry, never a duplicate.
    const rows = await client.execute(`SELECT node_id, owner FROM ${table}`, [], { prepare: true, fetchSize: MAX_NODE_ID + 1 });
    const held = new Set(rows.rows.filter((r) => r.get("owner") !== null).map((r) => r.get("node_id") as number));
    const candidates = Array.from({ length: MAX_NODE_ID + 1 }, (_, id) => id).filter((id) => !held.has(id));
    // A random start: nodes starting together mostly try different ids instead of all racing for the first free one.
    const start = randomInt(MAX_NODE_ID + 1);
    for (let i = 0; i < candidates.length; i++) {
      const id = candidates[(start + i) % candidates.length]!;
      const attempt = await tryClaim(id);
      if (attempt.claimed) return [attempt, id];
    }
    throw new NoFreeNodeIdError();
  }

  const [claim, nodeId] = requested !== undefined ? await claimRequested(requested) : await claimAny();
  logger?.info({ nodeId, owner, notBeforeMs: claim.notBeforeMs }, "node id leased");

  let highWaterMs = claim.highWaterMs;
  let claimedAt = claim.claimedAt;
  let state: "held" | "suspended" | "lost" | "released" = "held";
  let renewTimer: NodeJS.Timeout | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> | undefined;

  const lose = (reason: string) => {
    if (state !== "held" && state !== "suspended") return;
    state = "lost";
    clearTimeout(renewTimer);
    clearTimeout(deadlineTimer);
    const error = new NodeLeaseLostError(nodeId, reason);
    logger?.warn({ nodeId, owner, err: error }, "node id lease lost");
    onLost(error);
  };

  const suspend = (reason: string) => {
    if (state !== "held") return;
    state = "suspended";
    const error = new NodeLeaseLostError(nodeId, reason);
    logger?.warn({ nodeId, owner, err: error }, "node id lease suspended: minting stops until the store answers again");
    options.onSuspended?.(error);
  };

  const resume = () => {
    if (state !== "suspended") return;
    state = "held";
    logger?.info({ nodeId, owner }, "node id lease held again: minting resumes");
    options.onResumed?.();
  };

  // The lease may expire ttl after the last successful write was sent (minus
  // the margin): by then this node must have stopped minting, whatever the renewals do.
  const armDeadline = (sentAt: number) => {
    clearTimeout(deadlineTimer);
    const remaining = sentAt + ttlMs - LOSS_MARGIN_MS - performance.now();
    deadlineTimer = setTimeout(() => suspend(`not renewed within ${ttlSeconds - LOSS_MARGIN_MS / 1000} s`), Math.max(0, remaining));
    deadlineTimer.unref();
  };

  const scheduleRenewal = (delayMs: number) => {
    renewTimer = setTimeout(() => {
      renewing = renew()
        // Only onLost itself can throw here: report it, the lease is already marked lost.
        .catch((err: unknown) => logger?.warn({ nodeId, err }, "onLost of the node id lease threw"))
        .finally(() => (renewing = undefined));
    }, delayMs);
    renewTimer.unref();
  };

  async function renew(): Promise<void> {
    const sentAt = performance.now();
    let mark = highWaterMs;
    let result: cassandra.types.ResultSet;
    try {
      // The mark never goes down, even if the clock steps back.
      mark = Math.max(highWaterMs, Math.ceil(Math.max(lastIdMs(), Date.now())) + ttlMs);
      result = await client.batch(
        [
          {
            // claimed_at is rewritten too, or it would expire under the first TTL.
            query: `UPDATE ${table} USING TTL ? SET owner = ?, claimed_at = ? WHERE node_id = ? IF owner = ?`,
            params: [ttlSeconds, owner, claimedAt, nodeId, owner],
          },
          { query: `UPDATE ${table} SET last_id_ms = ? WHERE node_id = ?`, params: [String(mark), nodeId] },
        ],
        lwt,
      );
    } catch (err) {
      if (state !== "held" && state !== "suspended") return;
      logger?.warn({ nodeId, err }, "node id lease renewal failed; retrying");
      scheduleRenewal(Math.min(renewIntervalMs, RETRY_MS));
      return;
    }
    if (state !== "held" && state !== "suspended") return;
    if (!result.wasApplied()) {
      const current = currentRow(result).owner;
      if (state === "held" || current !== null) {
        lose(current === null ? "its row is gone or expired" : `taken over by ${current}`);
        return;
      }
      // Suspended, and the row expired meanwhile with nobody holding it: claim it back.
      // Its mark covers every id minted before the suspension, so nothing can repeat.
      let back: Claim;
      try {
        back = await tryClaim(nodeId);
      } catch (err) {
        logger?.warn({ nodeId, err }, "node id lease re-claim failed; retrying");
        scheduleRenewal(Math.min(renewIntervalMs, RETRY_MS));
        return;
      }
      if (state !== "suspended") return;
      if (!back.claimed) {
        lose(`taken over by ${back.owner} while the store was away`);
        return;
      }
      highWaterMs = Math.max(highWaterMs, back.highWaterMs);
      claimedAt = back.claimedAt;
      armDeadline(back.sentAt);
      resume();
      scheduleRenewal(renewIntervalMs);
      return;
    }
    highWaterMs = mark;
    armDeadline(sentAt);
    resume();
    scheduleRenewal(renewIntervalMs);
  }

  armDeadline(claim.sentAt);
  scheduleRenewal(renewIntervalMs);

  let releasing: Promise<void> | undefined;
  return {
    nodeId,
    owner,
    notBeforeMs: claim.notBeforeMs,
    get mintable() {
      return state === "held";
    },
    release(lastMs: number) {
      if (!Number.isFinite(lastMs)) return Promise.reject(new RangeError(`lastIdMs must be a Unix ms, got ${lastMs}`));
      releasing ??= (async () => {
        state = state === "held" || state === "suspended" ? "released" : state;
        clearTimeout(renewTimer);
        clearTimeout(deadlineTimer);
        // A renewal landing after the release would take the row back for a whole TTL.
        await renewing;
        // Never hand over a mark below what earlier holders used, whatever the caller passes.
        const mark = Math.max(Math.ceil(lastMs), claim.notBeforeMs);
        const result = await client.execute(
          `UPDATE ${table} SET owner = null, claimed_at = null, last_id_ms = ? WHERE node_id = ? IF owner = ?`,
          [String(mark), nodeId, owner],
          lwt,
        );
        if (result.wasApplied()) logger?.info({ nodeId, lastIdMs: mark }, "node id lease released");
        else logger?.warn({ nodeId, owner: currentRow(result).owner }, "node id lease was no longer ours at release");
      })();
      return releasing;
    },
  };
}

/** The current values a failed conditional write returns (none when the row does not exist). */
function currentRow(result: cassandra.types.ResultSet): { owner: string | null; lastIdMs: string | null } {
  const row = result.first();
  const has = (name: string) => result.columns?.some((c) => c.name === name) ?? false;
  const owner = row && has("owner") ? (row.get("owner") as string | null) : null;
  const lastIdMs = row && has("last_id_ms") ? (row.get("last_id_ms") as bigint | { toString(): string } | null) : null;
  return { owner, lastIdMs: lastIdMs === null ? null : String(lastIdMs) };
}

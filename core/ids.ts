/**
 * 64-bit, time-ordered ids for users, channels and messages.
 *
 * Layout (most significant first): 1 zero bit | 41 bits milliseconds since
 * ID_EPOCH_MS | 10 bits node id | 12 bits sequence. The zero top bit keeps ids
 * positive in signed 64-bit columns (SQLite INTEGER, Cassandra bigint); 41 bits
 * of milliseconds last until 2093. Ids from one generator are strictly
 * increasing; ids from different nodes never collide as long as node ids differ.
 */

/** 2024-01-01T00:00:00Z: the zero of the id clock. */
export const ID_EPOCH_MS = 1_704_067_200_000;

export const NODE_ID_BITS = 10;
export const SEQUENCE_BITS = 12;
export const MAX_NODE_ID = (1 << NODE_ID_BITS) - 1;
const MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1;
const TIMESTAMP_SHIFT = BigInt(NODE_ID_BITS + SEQUENCE_BITS);
/** Largest id value: the largest positive signed 64-bit integer. */
export const MAX_ID = (1n << 63n) - 1n;

export interface IdGenerator {
  /** A new id, greater than every id this generator returned before. */
  next(): bigint;
  /**
   * Unix ms at or after the timestamp of every id returned so far (before the
   * first id: notBeforeMs, or ID_EPOCH_MS - 1). A later holder of the same
   * node id that starts with notBeforeMs = lastMs() cannot repeat an id.
   */
  lastMs(): number;
}

export interface IdGeneratorOptions {
  nodeId: number;
  /**
   * Unix ms; every id's timestamp is above it. An earlier holder of this node
   * id may have minted ids up to this ms (possibly by a clock ahead of ours):
   * starting above it keeps ids unique across holders.
   */
  notBeforeMs?: number;
  /** Clock in Unix milliseconds; replaceable in tests. */
  now?: () => number;
}

export function createIdGenerator(options: IdGeneratorOptions): IdGenerator {
  const { nodeId } = options;
  if (!Number.isInteger(nodeId) || nodeId < 0 || nodeId > MAX_NODE_ID) {
    throw new RangeError(`node id must be an integer from 0 to ${MAX_NODE_ID}, got ${nodeId}`);
  }
  const { notBeforeMs } = options;
  if (notBeforeMs !== undefined && !Number.isSafeInteger(notBeforeMs)) {
    throw new RangeError(`notBeforeMs must be an integer Unix millisecond, got ${notBeforeMs}`);
  }
  const now = options.now ?? Date.now;
  const node = BigInt(nodeId) << BigInt(SEQUENCE_BITS);
  let lastMs = -1;
  let sequence = 0;
  if (notBeforeMs !== undefined && notBeforeMs - ID_EPOCH_MS > lastMs) {
    // As if this generator had used up notBeforeMs: the next id takes a later
    // millisecond, borrowed ahead of the clock if the clock is still behind.
    lastMs = notBeforeMs - ID_EPOCH_MS;
    sequence = MAX_SEQUENCE;
  }
  return {
    next() {
      let ms = now() - ID_EPOCH_MS;
      // A clock that steps back must not produce an id below an earlier one:
      // keep counting within the last millisecond seen.
      if (ms < lastMs) ms = lastMs;
      if (ms === lastMs) {
        sequence++;
        if (sequence > MAX_SEQUENCE) {
          // 4,096 ids in one millisecond: borrow the next millisecond.
          lastMs++;
          sequence = 0;
        }
      } else {
        lastMs = ms;
        sequence = 0;
      }
      return (BigInt(lastMs) << TIMESTAMP_SHIFT) | node | BigInt(sequence);
    },
    lastMs: () => lastMs + ID_EPOCH_MS,
  };
}

/** The Unix time in milliseconds encoded in an id. */
export function timestampOfId(id: bigint): number {
  return Number(id >> TIMESTAMP_SHIFT) + ID_EPOCH_MS;
}

/** The smallest id that any generator can produce at the given Unix millisecond. */
export function firstIdAt(unixMs: number): bigint {
  return BigInt(Math.max(0, unixMs - ID_EPOCH_MS)) << TIMESTAMP_SHIFT;
}

/**
 * How the store's modules reach Cassandra: through cassandra-store.ts, which
 * prepares every statement, fills in the keyspace ({ks} in the text) and
 * turns "the cluster could not answer" into StoreUnavailableError.
 */
import type cassandra from "cassandra-driver";

export type ResultSet = cassandra.types.ResultSet;
export type Row = cassandra.types.Row;

export interface Cql {
  /** One statement, sent now. */
  q(cql: string, params?: unknown[]): Promise<ResultSet>;
  /** Every row a read returns, page by page (q() returns the first page only, up to 5,000 rows). */
  qAll(cql: string, params: unknown[]): Promise<Row[]>;
  /** One write, sent with the others of this turn of the event loop (one socket write for all). */
  qSoon(cql: string, params: unknown[]): Promise<ResultSet>;
  /** A logged batch; conditional when a statement has IF (then all on one partition). */
  batch(statements: Array<{ cql: string; params: unknown[] }>): Promise<ResultSet>;
}

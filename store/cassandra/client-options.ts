/**
 * Translates the validated Cassandra settings into cassandra-driver client
 * options: credentials, TLS, timeouts and pooling. Kept apart from the store
 * so the store stays about data, and config stays the only env reader.
 */
import { readFileSync } from "node:fs";
import cassandra from "cassandra-driver";
import type { CassandraConfig } from "../../core/config.js";

export function cassandraClientOptions(settings: CassandraConfig): Partial<cassandra.ClientOptions> {
  const local = cassandra.types.distance.local;
  const remote = cassandra.types.distance.remote;
  return {
    ...(settings.username !== undefined &&
      settings.password !== undefined && {
        authProvider: new cassandra.auth.PlainTextAuthProvider(settings.username, settings.password),
      }),
    ...(settings.tlsCaFile !== undefined && { sslOptions: { ca: [readFileSync(settings.tlsCaFile)], rejectUnauthorized: true } }),
    socketOptions: { readTimeout: settings.requestTimeoutMs, connectTimeout: settings.connectTimeoutMs },
    pooling: { coreConnectionsPerHost: { [local]: settings.connectionsPerHost, [remote]: 1 } },
  };
}

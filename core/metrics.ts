/**
 * Prometheus metrics of one process. Each server instance owns its registry, so
 * several servers can run in one test process without colliding.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface ApiMetrics {
  registry: Registry;
  rpcRequests: Counter<"method" | "code">;
  rpcDuration: Histogram<"method">;
  messagesPosted: Counter<"delivery">;
  storeBatchSize: Histogram;
  storeBatchSeconds: Histogram;
  eventsPublished: Counter<"kind">;
}

export function createApiMetrics(options: { defaultMetrics?: boolean } = {}): ApiMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "chat_" });
  return {
    registry,
    rpcRequests: new Counter({
      name: "chat_rpc_requests_total",
      help: "RPCs handled, by method and status code.",
      labelNames: ["method", "code"],
      registers: [registry],
    }),
    rpcDuration: new Histogram({
      name: "chat_rpc_duration_seconds",
      help: "Time to answer an RPC (until the response message or stream ends).",
      labelNames: ["method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    messagesPosted: new Counter({
      name: "chat_messages_posted_total",
      help: "Messages accepted (not counting idempotent replays), by channel delivery mode.",
      labelNames: ["delivery"],
      registers: [registry],
    }),
    storeBatchSize: new Histogram({
      name: "chat_store_write_batch_size",
      help: "Messages committed per group commit of the embedded store.",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    storeBatchSeconds: new Histogram({
      name: "chat_store_write_batch_seconds",
      help: "Time of one group commit of the embedded store, fsync included.",
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    eventsPublished: new Counter({
      name: "chat_events_published_total",
      help: "Events published on the bus, by payload kind.",
      labelNames: ["kind"],
      registers: [registry],
    }),
  };
}

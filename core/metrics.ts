/**
 * Prometheus metrics of one process. Each server instance owns its registry, so
 * several servers can run in one test process without colliding.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface ApiMetrics {
  registry: Registry;
  rpcRequests: Counter<"method" | "code">;
  rpcDuration: Histogram<"method">;
  messagesPosted: Counter<"delivery">;
  messageWriteSeconds: Histogram<"delivery">;
  storeBatchSize: Histogram;
  storeBatchSeconds: Histogram;
  eventsPublished: Counter<"kind">;
  fastLogRecords: Counter<"outcome">;
  historyReads: Counter<"source">;
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
    messageWriteSeconds: new Histogram({
      name: "chat_message_write_seconds",
      help: "From a post's id to its durable write (PERSISTED: the store; FAST: the write-behind log), whichever store; events wait for it.",
      labelNames: ["delivery"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
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
    fastLogRecords: new Counter({
      name: "chat_fast_log_records_total",
      help: "FAST messages through the write-behind log: written by this process's writer, store write failed (retried), or written directly because the log was unreachable.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    historyReads: new Counter({
      name: "chat_history_reads_total",
      help: "ListMessages pages by where they came from: the store, the immutable-page cache, or a concurrent identical read.",
      labelNames: ["source"],
      registers: [registry],
    }),
  };
}

export interface GatewayMetrics {
  connections: Gauge;
  framesIn: Counter<"kind">;
  framesOut: Counter<"kind">;
  bytesIn: Counter;
  bytesOut: Counter;
  closes: Counter<"reason">;
  backpressureDrops: Counter;
  deliveryLatency: Histogram;
  busSubscriptions: Gauge;
}

/** Metrics of the WebSocket gateway, registered in the process's registry. */
export function createGatewayMetrics(registry: Registry, busSubscriptions: () => number): GatewayMetrics {
  return {
    connections: new Gauge({ name: "chat_gateway_connections", help: "Open WebSocket connections.", registers: [registry] }),
    framesIn: new Counter({
      name: "chat_gateway_frames_in_total",
      help: "Client frames received, by kind (post, resume, ping, malformed).",
      labelNames: ["kind"],
      registers: [registry],
    }),
    framesOut: new Counter({
      name: "chat_gateway_frames_out_total",
      help: "Server frames delivered to sockets, by kind (a topic publish counts once per subscriber).",
      labelNames: ["kind"],
      registers: [registry],
    }),
    bytesIn: new Counter({ name: "chat_gateway_bytes_in_total", help: "Bytes of client frames received.", registers: [registry] }),
    bytesOut: new Counter({
      name: "chat_gateway_bytes_out_total",
      help: "Bytes of server frames delivered (a topic publish counts once per subscriber).",
      registers: [registry],
    }),
    closes: new Counter({
      name: "chat_gateway_closes_total",
      help: "Closed connections, by reason.",
      labelNames: ["reason"],
      registers: [registry],
    }),
    backpressureDrops: new Counter({
      name: "chat_gateway_backpressure_drops_total",
      help: "Sockets cut off because they did not read fast enough (close code 4008).",
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: "chat_gateway_delivery_latency_seconds",
      help: "From a message's id timestamp (accepted by the API) to its hand-off to the sockets.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    busSubscriptions: new Gauge({
      name: "chat_gateway_bus_subscriptions",
      help: "Bus subjects this process subscribes to (one per channel or user with a local listener).",
      registers: [registry],
      collect() {
        this.set(busSubscriptions());
      },
    }),
  };
}

/**
 * The concrete adapters an API node runs on, chosen from config: the store
 * (SQLite or Cassandra), the bus (in-process or NATS), the FAST write-behind
 * log (the store itself, or JetStream) and where node ids come from (config,
 * or a lease in Cassandra). The one place that names them; everything above
 * speaks ChatStore, Bus, FastLog and IdGenerator.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import path from "node:path";
import type { Bus } from "../bus/bus.js";
import { createLocalBus } from "../bus/local-bus.js";
import { createNatsBus, type NatsBus } from "../bus/nats-bus.js";
import { natsConnectionOptions } from "../bus/nats-options.js";
import type { Subjects } from "../bus/subjects.js";
import type { Config } from "../core/config.js";
import { createIdGenerator, type IdGenerator } from "../core/ids.js";
import type { Logger } from "../core/logger.js";
import type { ApiMetrics } from "../core/metrics.js";
import { StartupError } from "../core/startup-error.js";
import { cassandraClientOptions } from "../store/cassandra/client-options.js";
import { createCassandraStore, type CassandraChatStore } from "../store/cassandra/cassandra-store.js";
import { claimNodeLease } from "../store/cassandra/node-lease.js";
import { createStoreFastLog, type FastLog } from "../store/fast-log.js";
import { createJetStreamFastLog } from "../store/jetstream/jetstream-fast-log.js";
import { createSqliteStore } from "../store/sqlite/sqlite-store.js";
import { StoreUnavailableError, type AppendResult, type ChatStore } from "../store/store.js";

export interface OpenStore {
  store: ChatStore;
  /** Set when the store is Cassandra: node ids are leased in its keyspace. */
  cassandra: CassandraChatStore | undefined;
}

export async function openStore(config: Config, metrics: ApiMetrics): Promise<OpenStore> {
  if (config.store.kind === "cassandra") {
    const settings = config.store.cassandra;
    const cassandra = await createCassandraStore({ ...settings, client: cassandraClientOptions(settings) }).catch((err: unknown) => {
      throw new StartupError(`cannot open the Cassandra store at ${settings.contactPoints.join(", ")}: ${cassandraFailure(err)}`, { cause: err });
    });
    return { store: cassandra, cassandra };
  }
  const store = createSqliteStore({
    file: path.join(config.dataDir, "chat.sqlite"),
    onBatch(size, seconds) {
      metrics.storeBatchSize.observe(size);
      metrics.storeBatchSeconds.observe(seconds);
    },
  });
  return { store, cassandra: undefined };
}

/** The driver's error in one line: a NoHostAvailableError carries one error per host tried. */
function cassandraFailure(err: unknown): string {
  const inner = (err as { innerErrors?: Record<string, Error> }).innerErrors;
  if (!inner || Object.keys(inner).length === 0) return (err as Error).message;
  return Object.entries(inner)
    .map(([host, e]) => `${host}: ${e.message}`)
    .join("; ");
}

export interface OpenBus {
  bus: Bus;
  /** Set when the bus is NATS: the FAST log runs on its connection. */
  nats: NatsBus | undefined;
  /** Emits "reconnect" when the bus came back after losing its connection (events may have been missed). */
  busEvents: EventEmitter;
}

export async function openBus(config: Config, logger: Logger): Promise<OpenBus> {
  const onHandlerError = (err: unknown, subject: string) => logger.error({ err, subject }, "bus subscriber failed");
  const busEvents = new EventEmitter();
  if (config.bus.kind !== "nats") return { bus: createLocalBus({ onHandlerError }), nats: undefined, busEvents };
  const nats = await connectNats(config, () => createNatsBus({
    servers: config.bus.nats.servers,
    connection: natsConnectionOptions(config.bus.nats),
    name: `chat-api-${hostname()}-${process.pid}`,
    onHandlerError,
    onDisconnect: () => logger.warn("NATS disconnected; events published meanwhile are buffered by the client"),
    onReconnect: () => {
      logger.info("NATS reconnected");
      busEvents.emit("reconnect");
    },
  }));
  return { bus: nats, nats, busEvents };
}

/** Opens a NATS connection, or fails the start with where it tried. */
export function connectNats<T>(config: Config, connect: () => Promise<T>): Promise<T> {
  return connect().catch((err: unknown) => {
    throw new StartupError(`cannot connect to NATS at ${config.bus.nats.servers.join(", ")}: ${(err as Error).message}`, { cause: err });
  });
}

export interface FastLogDeps {
  store: ChatStore;
  nats: NatsBus | undefined;
  subjects: Subjects;
  logger: Logger;
  metrics: ApiMetrics;
  /** A record the write-behind stored, with the seq the store gave it. */
  onStored: (result: AppendResult) => void;
}

/** On NATS, a JetStream stream drained into the store; otherwise the store itself. */
export async function openFastLog(config: Config, { store, nats, subjects, logger, metrics, onStored }: FastLogDeps): Promise<FastLog> {
  if (!nats) return createStoreFastLog(store);
  return await createJetStreamFastLog({
    connection: nats.connection,
    names: { stream: subjects.fastLogStream, subjectOf: subjects.fastLog, allSubjects: subjects.fastLogAll },
    store,
    ...config.bus.nats.fastLog,
    logger,
    onRecord: (outcome) => metrics.fastLogRecords.inc({ outcome }),
    onStored,
  }).catch((err: unknown) => {
    throw new StartupError(`cannot open the FAST channels' JetStream log: ${(err as Error).message}`, { cause: err });
  });
}

export interface NodeIds {
  /** Mints only while the node id is held: throws StoreUnavailableError while its lease is suspended. */
  ids: IdGenerator;
  /** Whether ids can be minted now (readiness). */
  readonly ready: boolean;
  /** Calls listener when `ready` changes. */
  watchReady(listener: (ready: boolean) => void): void;
  /** Gives the node id back at shutdown (with the newest time it minted), if it was leased. */
  release(): Promise<void>;
}

/**
 * On a shared store, node ids (part of every id) are leased so that no two
 * live nodes mint the same ones; a node that loses its lease must stop
 * minting, so it exits.
 */
export async function openNodeIds(config: Config, cassandra: CassandraChatStore | undefined, logger: Logger): Promise<NodeIds> {
  if (!cassandra) {
    return { ids: createIdGenerator({ nodeId: config.nodeId ?? 0 }), ready: true, watchReady: () => {}, release: async () => {} };
  }
  let ids: IdGenerator | undefined;
  const listeners: Array<(ready: boolean) => void> = [];
  const tell = (ready: boolean) => listeners.forEach((listener) => listener(ready));
  const lease = await claimNodeLease({
    client: cassandra.client,
    keyspace: cassandra.keyspace,
    owner: `${hostname()}/${process.pid}`,
    ...(config.nodeId !== undefined && { requested: config.nodeId }),
    ttlSeconds: config.store.cassandra.leaseTtlSeconds,
    renewIntervalMs: config.store.cassandra.leaseRenewSeconds * 1000,
    lastIdMs: () => ids?.lastMs() ?? 0,
    onSuspended: () => tell(false),
    onResumed: () => tell(true),
    onLost: (err) => {
      logger.fatal({ err }, "node id lease taken over by another node; exiting so that no id can be minted twice");
      logger.flush();
      process.exit(1);
    },
    logger,
  });
  logger.info({ nodeId: lease.nodeId, requested: config.nodeId !== undefined }, "node id leased");
  const leased = createIdGenerator({ nodeId: lease.nodeId, notBeforeMs: lease.notBeforeMs });
  ids = leased;
  return {
    ids: {
      next() {
        if (!lease.mintable) throw new StoreUnavailableError("this node's id lease could not be renewed (the store is away)");
        return leased.next();
      },
      lastMs: () => leased.lastMs(),
    },
    get ready() {
      return lease.mintable;
    },
    watchReady: (listener) => listeners.push(listener),
    release: () => lease.release(leased.lastMs()).catch((err: unknown) => logger.warn({ err }, "node id lease release failed")),
  };
}

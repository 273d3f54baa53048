/**
 * Composition root of the API role: store, bus, ids, auth and the domain
 * services, served on the API port. `bin/chat.ts` and the tests both start the
 * API through here, so tests run exactly what production runs.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import path from "node:path";
import type { Bus } from "../bus/bus.js";
import { createFanout, type Fanout } from "../bus/fanout.js";
import { createLocalBus } from "../bus/local-bus.js";
import { createJetStreamFastLog } from "../store/jetstream/jetstream-fast-log.js";
import { createNatsBus, type NatsBus } from "../bus/nats-bus.js";
import { natsConnectionOptions } from "../bus/nats-options.js";
import { createSubjects, type Subjects } from "../bus/subjects.js";
import type { Config } from "../core/config.js";
import { createIdGenerator, type IdGenerator } from "../core/ids.js";
import type { Logger } from "../core/logger.js";
import { createApiMetrics, type ApiMetrics } from "../core/metrics.js";
import { resolveSecret } from "../core/secrets.js";
import { cassandraClientOptions } from "../store/cassandra/client-options.js";
import { createCassandraStore } from "../store/cassandra/cassandra-store.js";
import { claimNodeLease, type NodeLease } from "../store/cassandra/node-lease.js";
import { createSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { ChatStore } from "../store/store.js";
import { startRpcServer, type RpcServer } from "../rpc/server.js";
import { createAuthenticator, type Authenticator } from "../chat/auth.js";
import { createChannelAccess, MEMBER_CHECK_TTL_MS, SOLE_WRITER_MEMBER_CHECK_TTL_MS } from "../chat/channels/access.js";
import { createChannelService } from "../chat/channels/channel-service.js";
import { createLocalEventBackend, type EventBackend } from "../realtime/event-backend.js";
import { EventService, registerEventService } from "../rpc/event-service.js";
import { createEventPublisher } from "../chat/events.js";
import { createStoreFastLog, type FastLog } from "../store/fast-log.js";
import { createMessageService } from "../chat/messages/message-service.js";
import { CHAT_POLICIES, CHAT_SERVICES, registerChatServices, type ChatHandlers } from "../rpc/chat-routes.js";
import { file_chat_v1_event } from "../gen/chat/v1/event_pb.js";
import { createUserService } from "../chat/users.js";

export interface RunningApi {
  server: RpcServer;
  /** The credentials in force (from config or generated), for gateway processes this process starts. */
  secrets: { adminToken: string; jwtSecret: string };
  /** Local interest in bus subjects, shared by the event stream and the gateway. */
  fanout: Fanout;
  /** Emits "reconnect" when the bus came back after losing its connection (events may have been missed). */
  busEvents: EventEmitter;
  eventBackend: EventBackend;
  handlers: ChatHandlers;
  auth: Authenticator;
  bus: Bus;
  subjects: Subjects;
  store: ChatStore;
  metrics: ApiMetrics;
  /** Graceful stop: NOT_SERVING, drain requests, flush and close the store and bus. */
  stop(): Promise<void>;
}

export interface StartApiOptions {
  config: Config;
  logger: Logger;
  /** Collect Node's default process metrics (off in tests that start many servers). */
  defaultMetrics?: boolean;
}

export async function startApi({ config, logger, defaultMetrics }: StartApiOptions): Promise<RunningApi> {
  const metrics = createApiMetrics({ defaultMetrics: defaultMetrics ?? true });
  const adminToken = resolveSecret(config.dataDir, "admin-token", config.auth.adminToken);
  const jwtSecret = resolveSecret(config.dataDir, "jwt-secret", config.auth.jwtSecret);
  if (typeof adminToken.source === "object") {
    logger.info({ file: adminToken.source.file, generated: adminToken.source.generated }, "admin token read from file (CHAT_ADMIN_TOKEN not set)");
  }
  const auth = createAuthenticator({
    adminToken: adminToken.value,
    jwtSecret: jwtSecret.value,
    defaultTokenTtlSeconds: config.auth.defaultTokenTtlSeconds,
    maxTokenTtlSeconds: config.auth.maxTokenTtlSeconds,
  });

  const cassandraStore =
    config.store.kind === "cassandra"
      ? await createCassandraStore({ ...config.store.cassandra, client: cassandraClientOptions(config.store.cassandra) })
      : undefined;
  const store: ChatStore =
    cassandraStore ??
    createSqliteStore({
          file: path.join(config.dataDir, "chat.sqlite"),
          onBatch(size, seconds) {
            metrics.storeBatchSize.observe(size);
            metrics.storeBatchSeconds.observe(seconds);
          },
        });
  const onHandlerError = (err: unknown, subject: string) => logger.error({ err, subject }, "bus subscriber failed");
  const busEvents = new EventEmitter();
  const natsBus: NatsBus | undefined =
    config.bus.kind === "nats"
      ? await createNatsBus({
          servers: config.bus.nats.servers,
          connection: natsConnectionOptions(config.bus.nats),
          name: `chat-api-${hostname()}-${process.pid}`,
          onHandlerError,
          onDisconnect: () => logger.warn("NATS disconnected; events published meanwhile are buffered by the client"),
          onReconnect: () => {
            logger.info("NATS reconnected");
            busEvents.emit("reconnect");
          },
        })
      : undefined;
  const bus: Bus = natsBus ?? createLocalBus({ onHandlerError });
  const subjects = createSubjects(config.bus.subjectPrefix);
  const fastLog: FastLog = natsBus
    ? await createJetStreamFastLog({
        connection: natsBus.connection,
        names: { stream: subjects.fastLogStream, subjectOf: subjects.fastLog, allSubjects: subjects.fastLogAll },
        store,
        ...config.bus.nats.fastLog,
        logger,
        onRecord: (outcome) => metrics.fastLogRecords.inc({ outcome }),
      })
    : createStoreFastLog(store);
  // On a shared store, node ids (part of every id) are leased so no two live
  // nodes mint the same ones; a node that loses its lease must stop minting.
  let ids: IdGenerator | undefined;
  let lease: NodeLease | undefined;
  if (cassandraStore) {
    lease = await claimNodeLease({
      client: cassandraStore.client,
      keyspace: cassandraStore.keyspace,
      owner: `${hostname()}/${process.pid}`,
      ...(config.nodeId !== undefined && { requested: config.nodeId }),
      lastIdMs: () => ids?.lastMs() ?? 0,
      onLost: (err) => {
        logger.fatal({ err }, "node id lease lost; exiting so that no id can be minted twice");
        logger.flush();
        process.exit(1);
      },
      logger,
    });
    logger.info({ nodeId: lease.nodeId, requested: config.nodeId !== undefined }, "node id leased");
  }
  ids = lease
    ? createIdGenerator({ nodeId: lease.nodeId, notBeforeMs: lease.notBeforeMs })
    : createIdGenerator({ nodeId: config.nodeId ?? 0 });
  const deps = {
    store,
    ids,
    events: createEventPublisher({ bus, subjects, logger, metrics }),
    fastLog,
    auth,
    metrics,
    logger,
    now: Date.now,
  };
  const access = createChannelAccess(deps, {
    memberCheckTtlMs: config.store.kind === "sqlite" ? SOLE_WRITER_MEMBER_CHECK_TTL_MS : MEMBER_CHECK_TTL_MS,
  });
  const handlers: ChatHandlers = {
    users: createUserService(deps),
    channels: createChannelService(deps, access),
    messages: createMessageService(deps, access),
  };

  const fanout = createFanout(bus, subjects, {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  const eventBackend = createLocalEventBackend(handlers.channels, handlers.messages);
  const server = await startRpcServer({
    host: config.api.host,
    port: config.api.port,
    maxRequestBytes: config.api.maxRequestBytes,
    corsOrigins: config.api.corsOrigins,
    services: [...CHAT_SERVICES, EventService],
    policies: CHAT_POLICIES,
    reflectionFiles: [file_chat_v1_event],
    routes(router) {
      registerChatServices(router, handlers);
      registerEventService(router, {
        backend: eventBackend,
        fanout,
        busEvents,
        resumeLimit: config.gateway.resumeLimit,
        maxQueued: 10_000,
      });
    },
    auth,
    metrics,
    logger,
  });

  let stopping: Promise<void> | undefined;
  return {
    server,
    secrets: { adminToken: adminToken.value, jwtSecret: jwtSecret.value },
    fanout,
    busEvents,
    eventBackend,
    handlers,
    auth,
    bus,
    subjects,
    store,
    metrics,
    stop() {
      stopping ??= (async () => {
        await server.close(config.shutdownGraceMs);
        await fastLog.close();
        const mintedUpTo = ids.lastMs();
        await lease?.release(mintedUpTo).catch((err: unknown) => logger.warn({ err }, "node id lease release failed"));
        await store.close();
        await bus.close();
      })();
      return stopping;
    },
  };
}

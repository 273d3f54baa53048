/**
 * Composition root of the API role: store, bus, ids, auth and the domain
 * services, served on the API port. `bin/chat.ts` and the tests both start the
 * API through here, so tests run exactly what production runs.
 */
import type { EventEmitter } from "node:events";
import type { Bus } from "../bus/bus.js";
import { createFanout, type Fanout } from "../bus/fanout.js";
import { createSubjects, type Subjects } from "../bus/subjects.js";
import { createAuthenticator, type Authenticator } from "../chat/auth.js";
import { createChannelAccess, MEMBER_CHECK_TTL_MS, SOLE_WRITER_MEMBER_CHECK_TTL_MS } from "../chat/channels/access.js";
import { createChannelService } from "../chat/channels/channel-service.js";
import type { ServiceDeps } from "../chat/deps.js";
import { createEventPublisher } from "../chat/events.js";
import { createKnownUsers } from "../chat/known-users.js";
import { createMessageService } from "../chat/messages/message-service.js";
import { publishStoredFastPost } from "../chat/messages/posting.js";
import { createSocketTickets } from "../chat/socket-tickets.js";
import { createUserService } from "../chat/users.js";
import type { Config } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import { createApiMetrics, type ApiMetrics } from "../core/metrics.js";
import { ensureWritableDataDir } from "../core/data-dir.js";
import { resolveSecret } from "../core/secrets.js";
import { file_chat_v1_event } from "../gen/chat/v1/event_pb.js";
import { createLocalEventBackend, type EventBackend } from "../realtime/event-backend.js";
import { CHAT_POLICIES, CHAT_SERVICES, registerChatServices, type ChatHandlers } from "../rpc/chat-routes.js";
import { EventService, registerEventService } from "../rpc/event-service.js";
import { startRpcServer, type RpcServer } from "../rpc/server.js";
import type { ChatStore } from "../store/store.js";
import { openBus, openFastLog, openNodeIds, openStore } from "./adapters.js";

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

/** The credentials in force: from config, or generated once into the data folder. */
function credentials(config: Config, logger: Logger) {
  const adminToken = resolveSecret(config.dataDir, "admin-token", config.auth.adminToken);
  const jwtSecret = resolveSecret(config.dataDir, "jwt-secret", config.auth.jwtSecret);
  if (typeof adminToken.source === "object") {
    logger.info({ file: adminToken.source.file, generated: adminToken.source.generated }, "admin token read from file (CHAT_ADMIN_TOKEN not set)");
  }
  return { adminToken: adminToken.value, jwtSecret: jwtSecret.value };
}

export async function startApi({ config, logger, defaultMetrics }: StartApiOptions): Promise<RunningApi> {
  const metrics = createApiMetrics({ defaultMetrics: defaultMetrics ?? true });
  if (config.store.kind === "sqlite" || !config.auth.adminToken || !config.auth.jwtSecret) ensureWritableDataDir(config.dataDir);
  const secrets = credentials(config, logger);
  const auth = createAuthenticator({
    ...secrets,
    defaultTokenTtlSeconds: config.auth.defaultTokenTtlSeconds,
    maxTokenTtlSeconds: config.auth.maxTokenTtlSeconds,
  });
  const { store, cassandra } = await openStore(config, metrics);
  const { bus, nats, busEvents } = await openBus(config, logger);
  const subjects = createSubjects(config.bus.subjectPrefix);
  const events = createEventPublisher({ bus, subjects, logger, metrics });
  const fastLog = await openFastLog(config, {
    store,
    nats,
    subjects,
    logger,
    metrics,
    onStored: (result) => void publishStoredFastPost(events, result),
  });
  const nodeIds = await openNodeIds(config, cassandra, logger);

  const deps: ServiceDeps = {
    store,
    ids: nodeIds.ids,
    events,
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
    tickets: createSocketTickets({ jwtSecret: secrets.jwtSecret }),
  };

  const fanout = createFanout(bus, subjects, {
    onListenerError: (err) => logger.error({ err }, "event listener failed"),
  });
  const knownUsers = createKnownUsers(store);
  const eventBackend = createLocalEventBackend(handlers.channels, handlers.messages, knownUsers);
  const server = await startRpcServer({
    host: config.api.host,
    port: config.api.port,
    maxRequestBytes: config.api.maxRequestBytes,
    corsOrigins: config.api.corsOrigins,
    services: [...CHAT_SERVICES, EventService],
    policies: CHAT_POLICIES,
    reflectionFiles: [file_chat_v1_event],
    routes(router, draining) {
      registerChatServices(router, handlers, draining);
      registerEventService(router, {
        backend: eventBackend,
        listChanges: (caller, req) => handlers.messages.listChanges(caller, req),
        fanout,
        busEvents,
        draining,
        resumeLimit: config.gateway.resumeLimit,
        maxQueued: 10_000,
      });
    },
    auth,
    knownUsers,
    metrics,
    logger,
    accessLog: config.accessLog,
  });

  // Readiness follows what the node cannot serve without; each change is logged once.
  const dependency = (name: string, why: string) => (available: boolean) => {
    server.health.setDependency(name, available, why);
    if (available) logger.info({ dependency: name }, `${name} is back: ready`);
    else logger.warn({ dependency: name }, `${why}: not ready (requests that need it answer UNAVAILABLE)`);
  };
  store.watchAvailability(dependency("store", "the store is unreachable"));
  nodeIds.watchReady(dependency("node id", "the node id lease could not be renewed"));

  let stopping: Promise<void> | undefined;
  return {
    server,
    secrets,
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
        await nodeIds.release();
        await store.close();
        await bus.close();
      })();
      return stopping;
    },
  };
}

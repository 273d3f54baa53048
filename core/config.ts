/**
 * The one place where configuration is read: environment variables (and the
 * command line's --role), validated at start into one typed Config. Every
 * other module receives the parts it needs as arguments.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { MAX_NODE_ID } from "./ids.js";

export const ROLES = ["all", "api", "gateway"] as const;
export type Role = (typeof ROLES)[number];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export interface Config {
  /** Which parts of the system this process runs. */
  role: Role;
  /**
   * This node's id (0 to 1023), unique among the nodes that mint ids. Unset:
   * 0 on the embedded store; on Cassandra the node leases a free one.
   */
  nodeId: number | undefined;
  /** Folder for the embedded store and generated secrets. */
  dataDir: string;
  api: {
    host: string;
    port: number;
    /** Largest accepted request message, in bytes. */
    maxRequestBytes: number;
    /** Browser origins allowed to call the API (CORS); "*" for any; empty for none. */
    corsOrigins: string[];
  };
  auth: {
    /** Bearer value of the admin credential; generated into dataDir when absent. */
    adminToken: string | undefined;
    /** HMAC key for user tokens; generated into dataDir when absent. */
    jwtSecret: string | undefined;
    defaultTokenTtlSeconds: number;
    maxTokenTtlSeconds: number;
  };
  gateway: GatewayConfig;
  store: {
    kind: "sqlite" | "cassandra";
    cassandra: {
      contactPoints: string[];
      localDataCenter: string;
      keyspace: string;
      replication: string;
      consistency: CassandraConsistency;
      /** Consistency of the Paxos phase of lightweight transactions. */
      serialConsistency: "localSerial" | "serial";
      username: string | undefined;
      password: string | undefined;
      /** PEM file of the CA that signed the nodes' certificates; set: connect with TLS. */
      tlsCaFile: string | undefined;
      requestTimeoutMs: number;
      connectTimeoutMs: number;
      /** Connections to each node of the local data center. */
      connectionsPerHost: number;
    };
  };
  bus: {
    kind: "local" | "nats";
    subjectPrefix: string;
    nats: NatsConfig;
  };
  logLevel: (typeof LOG_LEVELS)[number];
  /** How long SIGTERM waits for in-flight work before closing anyway. */
  shutdownGraceMs: number;
}

export type CassandraConsistency = "localQuorum" | "quorum" | "localOne" | "one" | "all" | "eachQuorum";

export interface NatsConfig {
  servers: string[];
  /** Credentials: a token, or a user and password, or a .creds file (NKey + JWT). */
  token: string | undefined;
  user: string | undefined;
  password: string | undefined;
  credsFile: string | undefined;
  /** PEM file of the CA that signed the servers' certificates; set: require TLS. */
  tlsCaFile: string | undefined;
  /** How often the client pings, and how many unanswered pings mean the connection is dead. */
  pingIntervalMs: number;
  maxPingsOut: number;
  reconnectWaitMs: number;
  /** FAST channels' write-behind log (JetStream stream) and its writer. */
  fastLog: {
    /** Copies of the stream in a NATS cluster (1 on a single server, 3 in production). */
    replicas: number;
    /** How long an unwritten record stays in the stream. */
    maxAgeSeconds: number;
    /** Whether this API process runs a writer that drains the log into the store. */
    writer: boolean;
  };
}

export interface GatewayConfig {
  /**
   * Gateway processes to fork in role `all` (0: the gateway runs inside the
   * main process). They share the listen ports (SO_REUSEPORT) and reach the
   * bus and the API through the main process.
   */
  workers: number;
  /** Role `gateway`: the API to post and read through. */
  apiUrl: string | undefined;
  /** Addresses the WebSocket gateway listens on (one per IP alias or NIC). */
  listen: Array<{ host: string; port: number }>;
  /** Largest client frame; a larger one closes the socket with 1009. */
  maxFrameBytes: number;
  /** Bytes queued for one slow socket before it is cut off (close code 4008). */
  maxBackpressureBytes: number;
  /** Seconds without traffic before a socket is closed; pings keep live ones open. */
  idleTimeoutSeconds: number;
  /**
   * Most sockets one gateway process holds (more: HTTP 503 at upgrade). Kept
   * below the open-files limit so that accepting never fails for lack of
   * file descriptors. 0: the process's open-files limit minus a reserve.
   */
  maxConnections: number;
  /** Most sockets one user may hold on one gateway process (more: HTTP 429 at upgrade). */
  maxConnectionsPerUser: number;
  /** Sustained posts per second per socket, and the burst above it. */
  postsPerSecond: number;
  postBurst: number;
  /** Most messages replayed per channel by one resume. */
  resumeLimit: number;
}

/** Thrown by loadConfig; the message lists every bad setting by name. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `expected an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

/** A comma-separated list; blanks around entries and empty entries are ignored. */
const commaList = z.string().transform((v) => v.split(",").map((entry) => entry.trim()).filter((entry) => entry !== ""));

const envSchema = z.object({
  CHAT_ROLE: z.enum(ROLES, { error: `expected one of ${ROLES.join(", ")}` }).default("all"),
  CHAT_NODE_ID: integer(0, MAX_NODE_ID).optional(),
  CHAT_DATA_DIR: z.string().min(1, "must not be empty").default("data"),
  CHAT_API_HOST: z.string().min(1, "must not be empty").default("127.0.0.1"),
  CHAT_API_PORT: integer(0, 65535).default(8080),
  CHAT_MAX_REQUEST_BYTES: integer(1024, 64 * 1024 * 1024).default(1024 * 1024),
  CHAT_CORS_ORIGINS: commaList
    .pipe(
      z.array(
        z.union([z.literal("*"), z.string().regex(/^https?:\/\/[^/\s]+$/, "expected \"*\" or origins like https://chat.example.com, comma-separated")]),
      ),
    )
    .default([]),
  CHAT_ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  CHAT_JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  CHAT_TOKEN_DEFAULT_TTL_SECONDS: integer(60, 366 * 86400).default(86400),
  CHAT_TOKEN_MAX_TTL_SECONDS: integer(60, 366 * 86400).default(30 * 86400),
  CHAT_GATEWAY_HOST: z.string().min(1, "must not be empty").default("127.0.0.1"),
  CHAT_GATEWAY_PORT: integer(0, 65535).default(8081),
  CHAT_GATEWAY_LISTEN: commaList
    .pipe(
      z
        .array(
          z
            .string()
            .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port entries, comma-separated")
            .refine((a) => Number(a.slice(a.lastIndexOf(":") + 1)) <= 65535, "ports must be at most 65535"),
        )
        .min(1, "expected at least one host:port"),
    )
    .optional(),
  CHAT_GATEWAY_WORKERS: integer(0, 64).default(0),
  CHAT_API_URL: z.url({ error: "expected a URL such as http://10.0.0.5:8080" }).optional(),
  CHAT_GATEWAY_MAX_FRAME_BYTES: integer(1024, 16 * 1024 * 1024).default(64 * 1024),
  CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES: integer(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024),
  CHAT_GATEWAY_IDLE_TIMEOUT_SECONDS: integer(8, 960).default(120),
  CHAT_GATEWAY_MAX_CONNECTIONS: integer(0, 100_000_000).default(0),
  CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER: integer(1, 100_000).default(20),
  CHAT_GATEWAY_POSTS_PER_SECOND: integer(1, 1_000_000).default(20),
  CHAT_GATEWAY_POST_BURST: integer(1, 1_000_000).default(50),
  CHAT_GATEWAY_RESUME_LIMIT: integer(1, 100_000).default(1000),
  CHAT_STORE: z.enum(["sqlite", "cassandra"], { error: "expected sqlite or cassandra" }).default("sqlite"),
  CHAT_CASSANDRA_CONTACT_POINTS: commaList
    .pipe(z.array(z.string().regex(/^[^\s:,]+(:\d{1,5})?$/, "expected host or host:port entries, comma-separated")).min(1))
    .default(["127.0.0.1:9042"]),
  CHAT_CASSANDRA_LOCAL_DC: z.string().min(1, "must not be empty").default("datacenter1"),
  CHAT_CASSANDRA_KEYSPACE: z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, "expected a CQL identifier: a-z, 0-9, _").default("chat"),
  CHAT_CASSANDRA_REPLICATION: z
    .string()
    .regex(/^\{.*'class'.*\}$/, "expected a CQL replication map, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}")
    .default("{'class': 'SimpleStrategy', 'replication_factor': 1}"),
  CHAT_CASSANDRA_CONSISTENCY: z
    .enum(["localQuorum", "quorum", "localOne", "one", "all", "eachQuorum"], { error: "expected localQuorum, quorum, localOne, one, all or eachQuorum" })
    .default("localQuorum"),
  CHAT_CASSANDRA_SERIAL_CONSISTENCY: z.enum(["localSerial", "serial"], { error: "expected localSerial or serial" }).default("localSerial"),
  CHAT_CASSANDRA_USERNAME: z.string().min(1).optional(),
  CHAT_CASSANDRA_PASSWORD: z.string().min(1).optional(),
  CHAT_CASSANDRA_TLS_CA_FILE: z.string().min(1).optional(),
  CHAT_CASSANDRA_REQUEST_TIMEOUT_MS: integer(100, 600_000).default(12_000),
  CHAT_CASSANDRA_CONNECT_TIMEOUT_MS: integer(100, 600_000).default(5_000),
  CHAT_CASSANDRA_CONNECTIONS_PER_HOST: integer(1, 64).default(2),
  CHAT_BUS: z.enum(["local", "nats"], { error: "expected local or nats" }).default("local"),
  CHAT_NATS_URL: commaList
    .pipe(z.array(z.string().regex(/^(nats|tls|ws|wss):\/\/[^\s/]+$/, "expected nats://host:port entries, comma-separated")).min(1))
    .default(["nats://127.0.0.1:4222"]),
  CHAT_NATS_TOKEN: z.string().min(1).optional(),
  CHAT_NATS_USER: z.string().min(1).optional(),
  CHAT_NATS_PASSWORD: z.string().min(1).optional(),
  CHAT_NATS_CREDS_FILE: z.string().min(1).optional(),
  CHAT_NATS_TLS_CA_FILE: z.string().min(1).optional(),
  CHAT_NATS_PING_INTERVAL_MS: integer(1_000, 600_000).default(10_000),
  CHAT_NATS_MAX_PINGS_OUT: integer(1, 100).default(3),
  CHAT_NATS_RECONNECT_WAIT_MS: integer(10, 60_000).default(500),
  CHAT_FAST_LOG_REPLICAS: integer(1, 5).default(1),
  CHAT_FAST_LOG_MAX_AGE_SECONDS: integer(60, 365 * 86400).default(7 * 86400),
  CHAT_FAST_LOG_WRITER: z.enum(["true", "false"], { error: "expected true or false" }).default("true"),
  CHAT_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "expected dot-separated tokens of [A-Za-z0-9_-]")
    .default("chat"),
  CHAT_LOG_LEVEL: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  CHAT_SHUTDOWN_GRACE_MS: integer(0, 600_000).default(10_000),
});

/** The environment variables this program reads, for documentation and tests. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape);

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  argv?: string[];
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const argv = options.argv ?? process.argv.slice(2);
  const problems: string[] = [];

  let roleArg: string | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { role: { type: "string" } }, strict: true });
    roleArg = values.role;
  } catch (err) {
    problems.push(`command line: ${(err as Error).message}`);
  }

  const raw: Record<string, string | undefined> = {};
  for (const name of CONFIG_VARIABLES) {
    // An empty variable means "not set", as in most shells' `VAR= cmd` idiom.
    const value = env[name];
    raw[name] = value === "" ? undefined : value;
  }
  if (roleArg !== undefined) raw.CHAT_ROLE = roleArg;

  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      const got = raw[name];
      const source = name === "CHAT_ROLE" && roleArg !== undefined ? "--role" : name;
      problems.push(`${source}: ${issue.message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  if (e.CHAT_ROLE === "gateway" && e.CHAT_BUS === "nats") {
    const missing = (["CHAT_API_URL", "CHAT_ADMIN_TOKEN", "CHAT_JWT_SECRET"] as const).filter((n) => e[n] === undefined);
    if (missing.length > 0) {
      throw new ConfigError(missing.map((n) => `${n}: required for a gateway in its own process (role gateway with CHAT_BUS=nats)`));
    }
  }
  const pairs = [
    ["CHAT_CASSANDRA_USERNAME", "CHAT_CASSANDRA_PASSWORD"],
    ["CHAT_NATS_USER", "CHAT_NATS_PASSWORD"],
  ] as const;
  for (const [a, b] of pairs) {
    if ((e[a] === undefined) !== (e[b] === undefined)) throw new ConfigError([`${e[a] === undefined ? a : b}: required together with ${e[a] === undefined ? b : a}`]);
  }
  const natsAuth = (["CHAT_NATS_TOKEN", "CHAT_NATS_USER", "CHAT_NATS_CREDS_FILE"] as const).filter((n) => e[n] !== undefined);
  if (natsAuth.length > 1) throw new ConfigError([`${natsAuth[1]}: only one of ${natsAuth.join(", ")} may be set`]);
  if (e.CHAT_TOKEN_DEFAULT_TTL_SECONDS > e.CHAT_TOKEN_MAX_TTL_SECONDS) {
    throw new ConfigError([
      `CHAT_TOKEN_DEFAULT_TTL_SECONDS: must not exceed CHAT_TOKEN_MAX_TTL_SECONDS (${e.CHAT_TOKEN_MAX_TTL_SECONDS})`,
    ]);
  }

  return {
    role: e.CHAT_ROLE,
    nodeId: e.CHAT_NODE_ID,
    dataDir: path.resolve(e.CHAT_DATA_DIR),
    api: {
      host: e.CHAT_API_HOST,
      port: e.CHAT_API_PORT,
      maxRequestBytes: e.CHAT_MAX_REQUEST_BYTES,
      corsOrigins: e.CHAT_CORS_ORIGINS,
    },
    auth: {
      adminToken: e.CHAT_ADMIN_TOKEN,
      jwtSecret: e.CHAT_JWT_SECRET,
      defaultTokenTtlSeconds: e.CHAT_TOKEN_DEFAULT_TTL_SECONDS,
      maxTokenTtlSeconds: e.CHAT_TOKEN_MAX_TTL_SECONDS,
    },
    gateway: {
      workers: e.CHAT_GATEWAY_WORKERS,
      apiUrl: e.CHAT_API_URL,
      listen: (e.CHAT_GATEWAY_LISTEN ?? [`${e.CHAT_GATEWAY_HOST}:${e.CHAT_GATEWAY_PORT}`]).map(parseHostPort),
      maxFrameBytes: e.CHAT_GATEWAY_MAX_FRAME_BYTES,
      maxBackpressureBytes: e.CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES,
      idleTimeoutSeconds: e.CHAT_GATEWAY_IDLE_TIMEOUT_SECONDS,
      maxConnections: e.CHAT_GATEWAY_MAX_CONNECTIONS,
      maxConnectionsPerUser: e.CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER,
      postsPerSecond: e.CHAT_GATEWAY_POSTS_PER_SECOND,
      postBurst: e.CHAT_GATEWAY_POST_BURST,
      resumeLimit: e.CHAT_GATEWAY_RESUME_LIMIT,
    },
    store: {
      kind: e.CHAT_STORE,
      cassandra: {
        contactPoints: e.CHAT_CASSANDRA_CONTACT_POINTS,
        localDataCenter: e.CHAT_CASSANDRA_LOCAL_DC,
        keyspace: e.CHAT_CASSANDRA_KEYSPACE,
        replication: e.CHAT_CASSANDRA_REPLICATION,
        consistency: e.CHAT_CASSANDRA_CONSISTENCY,
        serialConsistency: e.CHAT_CASSANDRA_SERIAL_CONSISTENCY,
        username: e.CHAT_CASSANDRA_USERNAME,
        password: e.CHAT_CASSANDRA_PASSWORD,
        tlsCaFile: e.CHAT_CASSANDRA_TLS_CA_FILE,
        requestTimeoutMs: e.CHAT_CASSANDRA_REQUEST_TIMEOUT_MS,
        connectTimeoutMs: e.CHAT_CASSANDRA_CONNECT_TIMEOUT_MS,
        connectionsPerHost: e.CHAT_CASSANDRA_CONNECTIONS_PER_HOST,
      },
    },
    bus: {
      kind: e.CHAT_BUS,
      subjectPrefix: e.CHAT_SUBJECT_PREFIX,
      nats: {
        servers: e.CHAT_NATS_URL,
        token: e.CHAT_NATS_TOKEN,
        user: e.CHAT_NATS_USER,
        password: e.CHAT_NATS_PASSWORD,
        credsFile: e.CHAT_NATS_CREDS_FILE,
        tlsCaFile: e.CHAT_NATS_TLS_CA_FILE,
        pingIntervalMs: e.CHAT_NATS_PING_INTERVAL_MS,
        maxPingsOut: e.CHAT_NATS_MAX_PINGS_OUT,
        reconnectWaitMs: e.CHAT_NATS_RECONNECT_WAIT_MS,
        fastLog: {
          replicas: e.CHAT_FAST_LOG_REPLICAS,
          maxAgeSeconds: e.CHAT_FAST_LOG_MAX_AGE_SECONDS,
          writer: e.CHAT_FAST_LOG_WRITER === "true",
        },
      },
    },
    logLevel: e.CHAT_LOG_LEVEL,
    shutdownGraceMs: e.CHAT_SHUTDOWN_GRACE_MS,
  };
}

function parseHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(address.slice(i + 1)) };
}

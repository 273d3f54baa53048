/**
 * The one place where configuration is read: environment variables (and the
 * command line's --role), validated at start into one typed Config. Every
 * other module receives the parts it needs as arguments.
 *
 * Each setting is declared once, in `declared` below: its variable and its
 * schema, which parses, checks and defaults it. The Config type is derived
 * from those declarations, and the rules that span several settings are
 * declared once too (`rules`). loadConfig reports every bad setting in one
 * ConfigError, each line starting with the variable's name.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { closest } from "fastest-levenshtein";
import { z } from "zod";
import { MAX_NODE_ID } from "./ids.js";

export const ROLES = ["all", "api", "gateway"] as const;
export type Role = (typeof ROLES)[number];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** Consistency levels of Cassandra reads and writes (cassandra-driver's names). */
export const CASSANDRA_CONSISTENCIES = ["localQuorum", "quorum", "localOne", "one", "all", "eachQuorum"] as const;
export type CassandraConsistency = (typeof CASSANDRA_CONSISTENCIES)[number];
/** Consistency levels of the Paxos phase of lightweight transactions. */
export const SERIAL_CONSISTENCIES = ["localSerial", "serial"] as const;
export type SerialConsistency = (typeof SERIAL_CONSISTENCIES)[number];

/** Bus subject prefixes: dot-separated tokens that NATS takes in a subject. */
export const SUBJECT_PREFIX_RULE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
export const SUBJECT_PREFIX_RULE_TEXT = "dot-separated tokens of [A-Za-z0-9_-]";

export interface Address {
  host: string;
  port: number;
}

/** One environment variable and the schema that turns its text into a value. */
interface Setting<S extends z.ZodType = z.ZodType> {
  readonly variable: string;
  readonly schema: S;
  /** A credential: its value is never repeated in an error. */
  readonly secret: boolean;
}

const setting = <S extends z.ZodType>(variable: string, schema: S): Setting<S> => ({ variable, schema, secret: false });
const secret = <S extends z.ZodType>(variable: string, schema: S): Setting<S> => ({ variable, schema, secret: true });

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `expected an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const nonEmpty = z.string().min(1, "must not be empty");
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, said = `one of ${values.join(", ")}`) =>
  z.enum(values, { error: `expected ${said}` });
const bool = oneOf(["true", "false"], "true or false").transform((v) => v === "true");

/** A comma-separated list; blanks around entries and empty entries are ignored. */
const commaList = z.string().transform((v) => v.split(",").map((entry) => entry.trim()).filter((entry) => entry !== ""));

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port entries, comma-separated")
  .refine((a) => Number(a.slice(a.lastIndexOf(":") + 1)) <= 65535, "ports must be at most 65535")
  .transform((address): Address => {
    const i = address.lastIndexOf(":");
    return { host: address.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(i + 1)) };
  });

const origin = z.union([
  z.literal("*"),
  z.string().regex(/^https?:\/\/[^/\s]+$/, 'expected "*" or origins like https://chat.example.com, comma-separated'),
]);

/** Every setting, in the shape of Config. */
const declared = {
  /** Which parts of the system this process runs. */
  role: setting("CHAT_ROLE", oneOf(ROLES).default("all")),
  /**
   * This node's id (0 to 1023), unique among the nodes that mint ids. Unset:
   * 0 on the embedded store; on Cassandra the node leases a free one.
   */
  nodeId: setting("CHAT_NODE_ID", integer(0, MAX_NODE_ID).optional()),
  /** Folder for the embedded store and generated secrets (absolute). */
  dataDir: setting("CHAT_DATA_DIR", nonEmpty.transform((dir) => path.resolve(dir)).prefault("data")),
  api: {
    host: setting("CHAT_API_HOST", nonEmpty.default("127.0.0.1")),
    port: setting("CHAT_API_PORT", integer(0, 65535).default(8080)),
    /** Largest accepted request message, in bytes. */
    maxRequestBytes: setting("CHAT_MAX_REQUEST_BYTES", integer(1024, 64 * 1024 * 1024).default(1024 * 1024)),
    /** Browser origins allowed to call the API (CORS); "*" for any; empty for none. */
    corsOrigins: setting("CHAT_CORS_ORIGINS", commaList.pipe(z.array(origin)).default([])),
  },
  auth: {
    /** Bearer value of the admin credential; generated into dataDir when absent. */
    adminToken: secret("CHAT_ADMIN_TOKEN", z.string().min(16, "must be at least 16 characters").optional()),
    /** HMAC key for user tokens; generated into dataDir when absent. */
    jwtSecret: secret("CHAT_JWT_SECRET", z.string().min(32, "must be at least 32 characters").optional()),
    defaultTokenTtlSeconds: setting("CHAT_TOKEN_DEFAULT_TTL_SECONDS", integer(60, 366 * 86400).default(86400)),
    maxTokenTtlSeconds: setting("CHAT_TOKEN_MAX_TTL_SECONDS", integer(60, 366 * 86400).default(30 * 86400)),
  },
  gateway: {
    /**
     * Gateway processes to fork in role `all` (0: the gateway runs inside the
     * main process). They share the listen ports (SO_REUSEPORT) and reach the
     * bus and the API through the main process.
     */
    workers: setting("CHAT_GATEWAY_WORKERS", integer(0, 64).default(0)),
    /** Role `gateway`: the API to post and read through. */
    apiUrl: setting("CHAT_API_URL", z.url({ error: "expected a URL such as http://10.0.0.5:8080" }).optional()),
    host: setting("CHAT_GATEWAY_HOST", nonEmpty.default("127.0.0.1")),
    port: setting("CHAT_GATEWAY_PORT", integer(0, 65535).default(8081)),
    /** Addresses to listen on (one per IP alias or NIC); unset: host:port. */
    listen: setting("CHAT_GATEWAY_LISTEN", commaList.pipe(z.array(hostPort).min(1, "expected at least one host:port")).optional()),
    /** Largest client frame; a larger one closes the socket with 1009. */
    maxFrameBytes: setting("CHAT_GATEWAY_MAX_FRAME_BYTES", integer(1024, 16 * 1024 * 1024).default(64 * 1024)),
    /** Bytes queued for one slow socket before it is cut off (close code 4008). */
    maxBackpressureBytes: setting("CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES", integer(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024)),
    /** Seconds without traffic before a socket is closed; pings keep live ones open. */
    idleTimeoutSeconds: setting("CHAT_GATEWAY_IDLE_TIMEOUT_SECONDS", integer(8, 960).default(120)),
    /**
     * Most sockets one gateway process holds (more: HTTP 503 at upgrade). Kept
     * below the open-files limit so that accepting never fails for lack of
     * file descriptors. 0: the process's open-files limit minus a reserve.
     */
    maxConnections: setting("CHAT_GATEWAY_MAX_CONNECTIONS", integer(0, 100_000_000).default(0)),
    /** Most sockets one user may hold on one gateway process (more: HTTP 429 at upgrade). */
    maxConnectionsPerUser: setting("CHAT_GATEWAY_MAX_CONNECTIONS_PER_USER", integer(1, 100_000).default(20)),
    /** Sustained posts per second per socket, and the burst above it. */
    postsPerSecond: setting("CHAT_GATEWAY_POSTS_PER_SECOND", integer(1, 1_000_000).default(20)),
    postBurst: setting("CHAT_GATEWAY_POST_BURST", integer(1, 1_000_000).default(50)),
    /** Most messages replayed per channel by one resume. */
    resumeLimit: setting("CHAT_GATEWAY_RESUME_LIMIT", integer(1, 100_000).default(1000)),
  },
  store: {
    kind: setting("CHAT_STORE", oneOf(["sqlite", "cassandra"], "sqlite or cassandra").default("sqlite")),
    cassandra: {
      contactPoints: setting(
        "CHAT_CASSANDRA_CONTACT_POINTS",
        commaList
          .pipe(z.array(z.string().regex(/^[^\s:,]+(:\d{1,5})?$/, "expected host or host:port entries, comma-separated")).min(1))
          .default(["127.0.0.1:9042"]),
      ),
      localDataCenter: setting("CHAT_CASSANDRA_LOCAL_DC", nonEmpty.default("datacenter1")),
      keyspace: setting("CHAT_CASSANDRA_KEYSPACE", z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, "expected a CQL identifier: a-z, 0-9, _").default("chat")),
      /** Replication map the keyspace is created with when it is missing. */
      replication: setting(
        "CHAT_CASSANDRA_REPLICATION",
        z
          .string()
          .regex(/^\{.*'class'.*\}$/, "expected a CQL replication map, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}")
          .default("{'class': 'SimpleStrategy', 'replication_factor': 1}"),
      ),
      consistency: setting("CHAT_CASSANDRA_CONSISTENCY", oneOf(CASSANDRA_CONSISTENCIES, "localQuorum, quorum, localOne, one, all or eachQuorum").default("localQuorum")),
      /** Consistency of the Paxos phase of lightweight transactions. */
      serialConsistency: setting("CHAT_CASSANDRA_SERIAL_CONSISTENCY", oneOf(SERIAL_CONSISTENCIES, "localSerial or serial").default("localSerial")),
      username: setting("CHAT_CASSANDRA_USERNAME", nonEmpty.optional()),
      password: secret("CHAT_CASSANDRA_PASSWORD", nonEmpty.optional()),
      /** PEM file of the CA that signed the nodes' certificates; set: connect with TLS. */
      tlsCaFile: setting("CHAT_CASSANDRA_TLS_CA_FILE", nonEmpty.optional()),
      requestTimeoutMs: setting("CHAT_CASSANDRA_REQUEST_TIMEOUT_MS", integer(100, 600_000).default(12_000)),
      connectTimeoutMs: setting("CHAT_CASSANDRA_CONNECT_TIMEOUT_MS", integer(100, 600_000).default(5_000)),
      /** Connections to each node of the local data center. */
      connectionsPerHost: setting("CHAT_CASSANDRA_CONNECTIONS_PER_HOST", integer(1, 64).default(2)),
      /**
       * The node id lease (API nodes on Cassandra): its lifetime unrenewed, and
       * how often it is renewed. A store outage longer than the lifetime minus
       * 2 s minus one renewal interval suspends minting (posts answer
       * UNAVAILABLE) until the store is back; the node keeps running.
       */
      leaseTtlSeconds: setting("CHAT_NODE_LEASE_TTL_SECONDS", integer(3, 3600).default(30)),
      leaseRenewSeconds: setting("CHAT_NODE_LEASE_RENEW_SECONDS", integer(1, 1800).default(10)),
    },
  },
  bus: {
    kind: setting("CHAT_BUS", oneOf(["local", "nats"], "local or nats").default("local")),
    subjectPrefix: setting(
      "CHAT_SUBJECT_PREFIX",
      z.string().regex(SUBJECT_PREFIX_RULE, `expected ${SUBJECT_PREFIX_RULE_TEXT}`).default("chat"),
    ),
    nats: {
      servers: setting(
        "CHAT_NATS_URL",
        commaList
          .pipe(z.array(z.string().regex(/^(nats|tls|ws|wss):\/\/[^\s/]+$/, "expected nats://host:port entries, comma-separated")).min(1))
          .default(["nats://127.0.0.1:4222"]),
      ),
      /** Credentials: a token, or a user and password, or a .creds file (NKey + JWT). */
      token: secret("CHAT_NATS_TOKEN", nonEmpty.optional()),
      user: setting("CHAT_NATS_USER", nonEmpty.optional()),
      password: secret("CHAT_NATS_PASSWORD", nonEmpty.optional()),
      credsFile: setting("CHAT_NATS_CREDS_FILE", nonEmpty.optional()),
      /** PEM file of the CA that signed the servers' certificates; set: require TLS. */
      tlsCaFile: setting("CHAT_NATS_TLS_CA_FILE", nonEmpty.optional()),
      /** How often the client pings, and how many unanswered pings mean the connection is dead. */
      pingIntervalMs: setting("CHAT_NATS_PING_INTERVAL_MS", integer(1_000, 600_000).default(10_000)),
      maxPingsOut: setting("CHAT_NATS_MAX_PINGS_OUT", integer(1, 100).default(3)),
      reconnectWaitMs: setting("CHAT_NATS_RECONNECT_WAIT_MS", integer(10, 60_000).default(500)),
      /** FAST channels' write-behind log (JetStream stream) and its writer. */
      fastLog: {
        /** Copies of the stream in a NATS cluster (1 on a single server, 3 in production). */
        replicas: setting("CHAT_FAST_LOG_REPLICAS", integer(1, 5).default(1)),
        /** How long an unwritten record stays in the stream. */
        maxAgeSeconds: setting("CHAT_FAST_LOG_MAX_AGE_SECONDS", integer(60, 365 * 86400).default(7 * 86400)),
        /** Whether this API process runs a writer that drains the log into the store. */
        writer: setting("CHAT_FAST_LOG_WRITER", bool.default(true)),
      },
    },
  },
  logLevel: setting("CHAT_LOG_LEVEL", oneOf(LOG_LEVELS).default("info")),
  /** One info line per RPC and per socket session (method or session, code, duration, user, request id). */
  accessLog: setting("CHAT_ACCESS_LOG", bool.default(true)),
  /** How long SIGTERM waits for in-flight work before closing anyway. */
  shutdownGraceMs: setting("CHAT_SHUTDOWN_GRACE_MS", integer(0, 600_000).default(10_000)),
} satisfies Declaration;

type Declaration = { readonly [key: string]: Setting | Declaration };
type Parsed<D> = { -readonly [K in keyof D]: D[K] extends Setting<infer S> ? z.output<S> : Parsed<D[K]> };

/** The settings as declared, before values derived from several of them. */
type Settings = Parsed<typeof declared>;

/** Values that follow from several settings. */
function derive(settings: Settings) {
  const { host, port, listen, ...gateway } = settings.gateway;
  return {
    ...settings,
    gateway: {
      ...gateway,
      /** Addresses the WebSocket gateway listens on (one per IP alias or NIC). */
      listen: listen ?? [{ host, port }],
    },
  };
}

export type Config = ReturnType<typeof derive>;
export type GatewayConfig = Config["gateway"];
export type CassandraConfig = Config["store"]["cassandra"];
export type NatsConfig = Config["bus"]["nats"];

/** A rule reads settings through this; it is skipped when one of them is bad (already reported). */
type Read = <S extends z.ZodType>(s: Setting<S>) => z.output<S>;

const { role, auth, gateway, store, bus } = declared;
const nats = bus.nats;

const together = (a: Setting, b: Setting) => (read: Read) =>
  (read(a) === undefined) !== (read(b) === undefined)
    ? [`${read(a) === undefined ? a.variable : b.variable}: required together with ${read(a) === undefined ? b.variable : a.variable}`]
    : [];

/** Rules across settings; each returns its problems, every line naming a variable. */
const rules: Array<(read: Read) => string[]> = [
  (read) =>
    read(role) === "gateway" && read(bus.kind) !== "nats"
      ? [`${bus.kind.variable}: a gateway in its own process (role gateway) needs nats; gateway workers of role all are CHAT_GATEWAY_WORKERS`]
      : [],
  (read) =>
    read(role) === "gateway" && read(bus.kind) === "nats"
      ? ([gateway.apiUrl, auth.adminToken, auth.jwtSecret] as Setting[])
          .filter((s) => read(s) === undefined)
          .map((s) => `${s.variable}: required for a gateway in its own process (role gateway with CHAT_BUS=nats)`)
      : [],
  together(store.cassandra.username, store.cassandra.password),
  together(nats.user, nats.password),
  (read) => {
    const set = [nats.token, nats.user, nats.credsFile].filter((s) => read(s) !== undefined);
    return set.length > 1 ? [`${set[1]!.variable}: only one of ${set.map((s) => s.variable).join(", ")} may be set`] : [];
  },
  (read) =>
    read(store.cassandra.leaseRenewSeconds) * 1000 > (read(store.cassandra.leaseTtlSeconds) * 1000 - 2000) / 2
      ? [
          `${store.cassandra.leaseRenewSeconds.variable}: must be at most half of ${store.cassandra.leaseTtlSeconds.variable} minus 2 s (${(read(store.cassandra.leaseTtlSeconds) - 2) / 2} s), so that a failed renewal is retried in time`,
        ]
      : [],
  (read) =>
    read(auth.defaultTokenTtlSeconds) > read(auth.maxTokenTtlSeconds)
      ? [`${auth.defaultTokenTtlSeconds.variable}: must not exceed ${auth.maxTokenTtlSeconds.variable} (${read(auth.maxTokenTtlSeconds)})`]
      : [],
];

/** Variables of other software that this program refuses to run under, and why. */
const REFUSED: Record<string, string> = {
  UWS_USE_FALLBACK: "makes uWebSockets.js run its slow pure-JS fallback; the gateway needs the native binding: unset it",
};

function settingsOf(d: Declaration): Setting[] {
  return Object.values(d).flatMap((v) => ("variable" in v && "schema" in v ? [v as Setting] : settingsOf(v as Declaration)));
}

const SETTINGS = settingsOf(declared);

/** The environment variables this program reads, for documentation and tests. */
export const CONFIG_VARIABLES = SETTINGS.map((s) => s.variable);
const KNOWN = new Set(CONFIG_VARIABLES);
/** CHAT_ variables of the test suite, the benchmarks and their harness, not of the program. */
const IGNORED_PREFIXES = ["CHAT_TEST_", "CHAT_BENCH_", "CHAT_TARGET_", "CHAT_CASSANDRA_CACHE", "CHAT_CONFORMANCE_CACHE"];

/** Thrown by loadConfig; the message lists every bad setting by name. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  argv?: string[];
  /**
   * Told of what is suspicious but not wrong, such as a CHAT_ variable this
   * program does not know (a misspelling would otherwise pass unnoticed).
   */
  onWarning?: (message: string) => void;
}

const SKIP = Symbol("a setting this rule reads is bad");

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const argv = options.argv ?? process.argv.slice(2);
  const problems: string[] = [];

  let roleArg: string | undefined;
  try {
    roleArg = parseArgs({ args: argv, options: { role: { type: "string" } }, strict: true }).values.role;
  } catch (err) {
    problems.push(`command line: ${(err as Error).message}`);
  }
  for (const [variable, why] of Object.entries(REFUSED)) if (env[variable] !== undefined) problems.push(`${variable}: ${why}`);
  for (const variable of Object.keys(env)) {
    if (!variable.startsWith("CHAT_") || KNOWN.has(variable) || IGNORED_PREFIXES.some((p) => variable.startsWith(p))) continue;
    options.onWarning?.(`${variable} is not a setting of this program (did you mean ${closest(variable, CONFIG_VARIABLES)}?); it is ignored`);
  }

  const values = new Map<Setting, unknown>();
  for (const s of SETTINGS) {
    const fromFlag = s === role && roleArg !== undefined;
    // An empty variable means "not set", as in most shells' `VAR= cmd` idiom.
    const text = fromFlag ? roleArg : env[s.variable] === "" ? undefined : env[s.variable];
    const parsed = s.schema.safeParse(text);
    if (parsed.success) {
      values.set(s, parsed.data);
      continue;
    }
    const source = fromFlag ? "--role" : s.variable;
    for (const issue of parsed.error.issues) {
      problems.push(`${source}: ${issue.message}${text === undefined || s.secret ? "" : ` (got ${JSON.stringify(text)})`}`);
    }
  }

  const read: Read = (s) => {
    if (!values.has(s)) throw SKIP;
    return values.get(s) as never;
  };
  for (const rule of rules) {
    try {
      problems.push(...rule(read));
    } catch (err) {
      if (err !== SKIP) throw err;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return derive(build(declared, values) as Settings);
}

function build(d: Declaration, values: ReadonlyMap<Setting, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(d).map(([key, v]) => [key, "variable" in v && "schema" in v ? values.get(v as Setting) : build(v as Declaration, values)]),
  );
}

/**
 * Who gets a socket: the upgrade request's credentials (verified
 * synchronously, inside uWS's upgrade handler), the wire format it asked
 * for, and the caps: sockets per process (503) and per user (429). Holds the
 * set of open connections the rest of the gateway walks.
 */
import { readFileSync } from "node:fs";
import type { HttpRequest, HttpResponse, us_socket_context_t } from "uWebSockets.js";
import type { Authenticator, Principal, UserPrincipal } from "../chat/auth.js";
import type { SocketTickets } from "../chat/socket-tickets.js";
import { toConnectError } from "../chat/errors.js";
import type { GatewayConfig } from "../core/config.js";
import type { Logger } from "../core/logger.js";
import type { GatewayMetrics } from "../core/metrics.js";
import { BINARY_SUBPROTOCOLS, JSON_SUBPROTOCOL, type WireFormat } from "./codec.js";
import type { Connection, GatewaySocket } from "./connection.js";

/** How long a `?resume=1` connection holds events while waiting for its resume frame. */
export const START_HOLD_MS = 10_000;

export interface AdmissionOptions {
  config: Pick<GatewayConfig, "maxConnections" | "maxConnectionsPerUser">;
  /** Browser origins allowed to connect; "*" for any. Upgrades without an Origin header are not browsers'. */
  allowedOrigins: readonly string[];
  auth: Authenticator;
  /** Redeems ?ticket= (chat.v1.SocketService tickets), the way to connect without a token in the URL. */
  tickets: SocketTickets;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Makes the connection of an admitted socket. */
  connect(user: UserPrincipal, format: WireFormat, holdUntil: number): Connection;
}

export interface Admission {
  /** The open connections. */
  readonly connections: ReadonlySet<Connection>;
  /** uWS's upgrade handler: admits the socket or answers the request with an HTTP error. */
  upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void;
  /** uWS's open handler: the socket is the connection's from now on. */
  opened(ws: GatewaySocket): Connection;
  /** uWS's close handler: forgets the connection. */
  closed(ws: GatewaySocket): Connection;
}

export function createAdmission(options: AdmissionOptions): Admission {
  const { config, auth, metrics, logger } = options;
  const connections = new Set<Connection>();
  const maxConnections = config.maxConnections || defaultMaxConnections(logger);
  /** Upgrades accepted but not yet open: they count against the cap too. */
  let upgrading = 0;
  const perUser = new Map<bigint, number>();
  const anyOrigin = options.allowedOrigins.includes("*");
  const origins = new Set(options.allowedOrigins);

  return {
    connections,

    upgrade(res, req, context) {
      const key = req.getHeader("sec-websocket-key");
      const offered = req.getHeader("sec-websocket-protocol");
      const extensions = req.getHeader("sec-websocket-extensions");
      const query = new URLSearchParams(req.getQuery() ?? "");
      const header = req.getHeader("authorization");
      const token = query.get("access_token");
      const authorization = header !== "" ? header : token ? `Bearer ${token}` : undefined;
      const protocols = offered.split(",").map((p) => p.trim()).filter((p) => p !== "");
      const protocol = protocols.find((p) => p === JSON_SUBPROTOCOL || BINARY_SUBPROTOCOLS.includes(p)) ?? "";
      const format: WireFormat = protocol === JSON_SUBPROTOCOL || query.get("format") === "json" ? "json" : "binary";
      const reject = (status: string, body: string, extra?: [string, string]) => {
        metrics.closes.inc({ reason: `rejected ${status.slice(0, 3)}` });
        res.writeStatus(status);
        if (extra) res.writeHeader(extra[0], extra[1]);
        res.end(body);
      };
      // A browser page of another site must not open sockets with the user's token (cross-site WebSocket hijacking).
      const origin = req.getHeader("origin");
      if (origin !== "" && !anyOrigin && !origins.has(origin)) {
        return reject("403 Forbidden", `origin ${origin} is not allowed (CHAT_CORS_ORIGINS)\n`);
      }
      // Always synchronous, inside uWS's upgrade handler: an upgrade from a later res.cork() can close
      // the socket right after open (uWS bug uNetworking/uWebSockets#1928, fixed by #1929, not in v20.30).
      let principal: Principal;
      try {
        const ticket = query.get("ticket");
        principal = ticket !== null && header === "" ? options.tickets.redeem(ticket) : auth.authenticate(authorization);
      } catch (err) {
        return reject("401 Unauthorized", `${toConnectError(err).rawMessage}\n`, ["www-authenticate", "Bearer"]);
      }
      if (principal.kind !== "user") return reject("403 Forbidden", "the gateway takes user tokens only\n");
      if (connections.size + upgrading >= maxConnections) {
        return reject("503 Service Unavailable", "gateway full: connect to another\n", ["retry-after", "5"]);
      }
      const count = perUser.get(principal.userId) ?? 0;
      if (count >= config.maxConnectionsPerUser) {
        return reject("429 Too Many Requests", `at most ${config.maxConnectionsPerUser} connections per user\n`, ["retry-after", "30"]);
      }
      perUser.set(principal.userId, count + 1);
      const holdUntil = query.get("resume") === "1" ? Date.now() + START_HOLD_MS : 0;
      const connection = options.connect(principal, format, holdUntil);
      upgrading++;
      res.upgrade({ connection }, key, protocol, extensions, context);
    },

    opened(ws) {
      upgrading = Math.max(0, upgrading - 1);
      const c = ws.getUserData().connection;
      c.ws = ws;
      c.openedAt = Date.now();
      connections.add(c);
      return c;
    },

    closed(ws) {
      const c = ws.getUserData().connection;
      c.ws = undefined;
      connections.delete(c);
      const left = (perUser.get(c.user.userId) ?? 1) - 1;
      if (left === 0) perUser.delete(c.user.userId);
      else perUser.set(c.user.userId, left);
      return c;
    },
  };
}

/**
 * The open-files limit minus a reserve for the process's other files and
 * sockets: at the limit, accepting fails and uSockets retries in a busy loop.
 */
function defaultMaxConnections(logger: Logger): number {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
    if (Number.isFinite(soft) && soft > 0) return Math.max(100, soft - Math.max(200, Math.floor(soft * 0.05)));
  } catch (err) {
    logger.debug({ err }, "no /proc/self/limits; no connection cap from the open-files limit");
  }
  return Number.MAX_SAFE_INTEGER;
}

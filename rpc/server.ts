/**
 * The RPC server: Connect (JSON and binary), gRPC and gRPC-Web on one TCP
 * port, over HTTP/1.1 and cleartext HTTP/2 (h2c) alike, plus /healthz and
 * /metrics, gRPC health and reflection, CORS and the interceptors. It knows
 * no service of its own: the caller registers them (app/api-node.ts the chat
 * services, the conformance suite its ConformanceService).
 *
 * Node has no server that speaks both HTTP/1.1 and h2c on one cleartext
 * port, so a plain TCP server reads the first bytes of each connection: the
 * HTTP/2 connection preface starts with "PRI", which no HTTP/1 method does.
 */
import { createRegistry, type DescService, type Registry } from "@bufbuild/protobuf";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { setMaxListeners } from "node:events";
import type { Logger } from "../core/logger.js";
import { listenError } from "../core/startup-error.js";
import type { ApiMetrics } from "../core/metrics.js";
import type { DescFile } from "@bufbuild/protobuf";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import type { Authenticator } from "../chat/auth.js";
import type { KnownUsers } from "../chat/known-users.js";
import { registerHealth, type HealthState } from "./health.js";
import { createCors } from "./cors.js";
import { createAuthInterceptor, createObservabilityInterceptor, type AccessPolicy } from "./interceptors.js";
import { answerProtocolError } from "./protocol-errors.js";
import { registerReflection } from "./reflection.js";
import { createRpcHandler, type NodeRequest, type NodeResponse } from "./connect-node-adapter.js";

export interface RpcServerOptions {
  host: string;
  port: number;
  maxRequestBytes: number;
  /** Browser origins allowed to call the API (CORS); "*" for any. */
  corsOrigins?: readonly string[];
  /** The services `routes` registers: described by health and reflection. */
  services: DescService[];
  /**
   * Registers the services' handlers on the router. `draining` aborts when
   * the drain begins: long-lived streams end then (unary calls and answers
   * under way still finish within the grace period).
   */
  routes: (router: ConnectRouter, draining: AbortSignal) => void;
  /** Who may call what, by "package.Service" or "package.Service/Method"; anything else needs a user token. */
  policies: Record<string, AccessPolicy>;
  /** Files that reflection describes beyond the services' own (message types used in streams, say). */
  reflectionFiles?: DescFile[];
  auth: Authenticator;
  /** When given, a user principal must also exist (tokens of unknown users are UNAUTHENTICATED). */
  knownUsers?: KnownUsers;
  metrics: Pick<ApiMetrics, "registry" | "rpcDuration" | "rpcRequests">;
  logger: Logger;
  /** One info line per RPC (CHAT_ACCESS_LOG); on unless false. */
  accessLog?: boolean;
  /** Every error carries its request id as a chat.v1.RequestInfo detail; on unless false. */
  requestInfoInErrors?: boolean;
}

/** Every type that the services' files and the extra files declare or import. */
function typeRegistry(services: DescService[], files: DescFile[]): Registry {
  const all = new Map<string, DescFile>();
  const add = (file: DescFile) => {
    if (all.has(file.proto.name)) return;
    all.set(file.proto.name, file);
    file.dependencies.forEach(add);
  };
  services.forEach((s) => add(s.file));
  files.forEach(add);
  return createRegistry(...all.values());
}

/**
 * An answer can be complete before its request is: a client stream rejected
 * at a message over maxRequestBytes, an RPC that fails before it has read
 * everything, a 404 for an upload. Nothing read the rest of such a request,
 * so a client still sending it waited forever: on HTTP/2 for flow control
 * (its stream never closed), on HTTP/1.1 on the stalled connection (found by
 * the conformance suite's "Server Message Size" cases). Here the rest is read
 * and dropped once the answer is out, as node:http does itself for a body
 * nobody touched, so the client can finish sending and read the answer.
 *
 * At most maxBytes of it: beyond, the HTTP/2 stream is reset (RST_STREAM
 * NO_ERROR, RFC 9113 §8.1) or the HTTP/1.1 connection closed. The bound is
 * for abuse, not for clients that finish a message: Go's HTTP/1.1 client
 * reuses a connection as soon as it has written its request, so closing one
 * while the last bytes arrive broke the next request on it ("unexpected EOF"),
 * and an RST_STREAM that overtakes an unread answer loses it in Go's HTTP/2
 * client.
 */
function dropUnreadRequestAfterAnswer(req: NodeRequest, res: NodeResponse, maxBytes: number): void {
  // HTTP/2's response emits "finish" only when the whole stream closes; the stream's own
  // "finish" is the answer's end. HTTP/1.1's response emits it when the answer is written.
  const answered = "stream" in req ? req.stream : (res as http.ServerResponse);
  answered.once("finish", () => {
    if (req.readableEnded || req.destroyed) return;
    let left = maxBytes;
    req.on("data", (chunk: Buffer) => {
      left -= chunk.length;
      if (left >= 0) return;
      if ("stream" in req) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
      else req.socket.destroy();
    });
    req.resume();
  });
}

export interface RpcServer {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  readonly health: HealthState;
  /**
   * Stops taking connections, reports NOT_SERVING, lets in-flight requests
   * finish for up to graceMs, then closes whatever is left.
   */
  close(graceMs: number): Promise<void>;
}

const H2_PREFACE = Buffer.from("PRI");
const SNIFF_TIMEOUT_MS = 10_000;

export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { metrics, logger, services } = options;
  let health: HealthState | undefined;
  const shutdown = new AbortController();
  const drain = new AbortController();
  setMaxListeners(0, drain.signal);
  // Every request in flight listens on this signal.
  setMaxListeners(0, shutdown.signal);

  const rpc = createRpcHandler({
    logger,
    readMaxBytes: options.maxRequestBytes,
    // A misspelled JSON field is an error, not silently ignored (as in Google's JSON APIs).
    // Binary clients keep protobuf's forward compatibility: unknown fields are skipped.
    // The registry: protobuf JSON writes and reads a google.protobuf.Any by its type URL, so
    // without the API's types every JSON answer holding an Any failed with INTERNAL
    // ("... is not in the type registry"; found by the conformance suite, whose payloads echo
    // requests as Any).
    jsonOptions: { ignoreUnknownFields: false, registry: typeRegistry([...services, Health], options.reflectionFiles ?? []) },
    shutdownSignal: shutdown.signal,
    interceptors: [createObservabilityInterceptor(metrics, logger, {
        accessLog: options.accessLog ?? true,
        requestInfoInErrors: options.requestInfoInErrors ?? true,
      }), createAuthInterceptor(options.auth, options.policies, options.knownUsers)],
    routes(router) {
      options.routes(router, drain.signal);
      health = registerHealth(router, services);
      registerReflection(router, [...services, Health], options.reflectionFiles ?? []);
    },
  });

  const cors = createCors(options.corsOrigins ?? []);
  // The rest of a rejected message and a few more: see dropUnreadRequestAfterAnswer.
  const unreadRequestLimit = 4 * Math.max(options.maxRequestBytes, 1024 * 1024);
  // One request's failure is that request's 500, never the process's: an
  // uncaught exception stops it (bin/chat.ts), and a request's Host header
  // once could (connect-node's adapter threw on one that made no URL).
  const handle = (req: NodeRequest, res: NodeResponse) => {
    if (!("stream" in req) && !admitHttp1(req, res as http.ServerResponse)) return;
    dropUnreadRequestAfterAnswer(req, res, unreadRequestLimit);
    try {
      route(req, res);
    } catch (err) {
      logger.error({ err, path: req.url?.split("?")[0] }, "request handler failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end();
    }
  };
  const route = (req: NodeRequest, res: NodeResponse) => {
    if (cors(req, res)) return;
    const path = req.url?.split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      const reason = health ? health.reason : "starting";
      res.writeHead(reason === undefined ? 200 : 503, { "content-type": "text/plain" });
      res.end(reason === undefined ? "ok\n" : `${reason}\n`);
      return;
    }
    if (req.method === "GET" && path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          logger.error({ err }, "metrics collection failed");
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    if ((path === "/healthz" || path === "/metrics") && req.method !== "GET") {
      answerProtocolError(req, res, { status: 405, code: Code.Unknown, message: `${path} takes GET only`, headers: { allow: "GET" } });
      return;
    }
    if (rpc(req, res)) return;
    answerProtocolError(req, res, { status: 404, code: Code.Unimplemented, message: `no such method: ${path ?? ""}` });
  };

  const h1 = http.createServer(handle);
  const h2 = http2.createServer({}, handle);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();
  // HTTP/1.1 requests under way per socket. http.Server only tracks idle
  // connections for sockets it accepted itself, so shutdown does it here.
  // Counted before any handler runs, so that a request the drain lets in is
  // always seen, and answered.
  const h1Active = new Map<net.Socket, number>();
  /** Answers under way: the drain turns their keep-alive off while it still can. */
  const h1Answers = new Set<http.ServerResponse>();
  /** Connections the drain hung up after their last answer: a request still read on one is not run. */
  const hungUp = new WeakSet<net.Socket>();
  let draining = false;
  function admitHttp1(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const socket = req.socket;
    if (hungUp.has(socket)) {
      // The client sent it before it saw the hang-up: it gets a broken connection, and nothing was done.
      socket.destroy();
      return false;
    }
    h1Active.set(socket, (h1Active.get(socket) ?? 0) + 1);
    h1Answers.add(res);
    // Answered with "Connection: close" while draining, so that the client sends nothing more on it.
    // (Set before the handler runs: setHeader after the answer started threw, and crashed the drain.)
    if (draining) res.shouldKeepAlive = false;
    res.once("close", () => {
      h1Answers.delete(res);
      const left = (h1Active.get(socket) ?? 1) - 1;
      h1Active.set(socket, left);
      if (draining && left === 0) hangUp(socket);
    });
    return true;
  }
  const hangUp = (socket: net.Socket) => {
    hungUp.add(socket);
    socket.end();
  };

  const h2Sockets = new WeakSet<net.Socket>();
  const isH2 = (socket: net.Socket) => h2Sockets.has(socket);
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      h1Active.delete(socket);
    });
    socket.on("error", () => socket.destroy());
    // A connection that never says which protocol it speaks is dropped;
    // after that the HTTP servers' own timeouts apply.
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const couldBeH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (couldBeH2 && head.length < H2_PREFACE.length) return; // wait for more bytes
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      if (couldBeH2) h2Sockets.add(socket);
      (couldBeH2 ? h2 : h1).emit("connection", socket);
      process.nextTick(() => socket.resume());
    };
    socket.on("data", onData);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(listenError("the API", options.host, options.port, err));
    tcp.once("error", onError);
    tcp.listen(options.port, options.host, () => {
      tcp.off("error", onError);
      resolve();
    });
  });
  const address = tcp.address() as net.AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url }, "api listening (Connect, gRPC, gRPC-Web; HTTP/1.1 and h2c)");

  return {
    url,
    port: address.port,
    get health() {
      if (!health) throw new Error("routes were not registered");
      return health;
    },
    async close(graceMs) {
      health?.setNotServing();
      draining = true;
      drain.abort();
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      // Stop keep-alive reuse; let requests under way finish, then hang up.
      for (const session of sessions) session.close();
      for (const res of h1Answers) if (!res.headersSent) res.shouldKeepAlive = false;
      // An idle HTTP/1.1 connection goes at once. destroy(), not end(): a request
      // already on its way in must not be read and run after this point, or it
      // would be stored with nobody to answer (the client sees the hang-up and
      // may retry; nothing was done).
      for (const socket of sockets) if (!h1Active.get(socket) && !isH2(socket)) socket.destroy();
      health?.closeWatchers();
      const timer = setTimeout(() => {
        shutdown.abort();
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      const allClosed = async () => {
        while (sockets.size > 0) await new Promise((r) => setTimeout(r, 10));
      };
      await Promise.all([closed, allClosed()]);
      clearTimeout(timer);
    },
  };
}

/**
 * Server interceptors around every RPC: authentication by method policy,
 * error mapping (store errors to codes, internals never leaked), metrics and
 * a log line for failures.
 */
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../core/logger.js";
import type { ApiMetrics } from "../core/metrics.js";
import { ON_BEHALF_OF_HEADER, type Authenticator, type Principal, type UserPrincipal } from "../chat/auth.js";
import type { KnownUsers } from "../chat/known-users.js";
import { MAX_ID } from "../core/ids.js";
import { codeName } from "../chat/error-codes.js";
import { toConnectError } from "../chat/errors.js";
import { RequestInfoSchema } from "../gen/chat/v1/error_pb.js";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

/** Where the authentication interceptor leaves the caller for handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

/** The caller, set by the auth interceptor, which runs first for every method that is not public. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  // Reaching a handler without one is a bug.
  if (!p) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return p;
}

/** The calling user; PERMISSION_DENIED for the admin credential. */
export function userOf(ctx: HandlerContext): UserPrincipal {
  const p = principalOf(ctx);
  if (p.kind !== "user") throw new ConnectError("this method needs a user token", Code.PermissionDenied);
  return p;
}

export type AccessPolicy = "public" | "admin" | "admin-or-user" | "user";

/** The server's own services, open to anyone (load balancers, grpcurl). */
const SERVER_POLICIES: Record<string, AccessPolicy> = {
  "grpc.health.v1.Health": "public",
  "grpc.reflection.v1.ServerReflection": "public",
  "grpc.reflection.v1alpha.ServerReflection": "public",
};

/** Policies by "package.Service/Method" or "package.Service"; methods not listed need a user token. */
export function policyOf(policies: Record<string, AccessPolicy>, service: string, method: string): AccessPolicy {
  return policies[`${service}/${method}`] ?? policies[service] ?? SERVER_POLICIES[service] ?? "user";
}

/**
 * Authenticates by the method's policy. With knownUsers, a user principal
 * (from a token, or named by a gateway acting for it) must also exist.
 */
export function createAuthInterceptor(auth: Authenticator, policies: Record<string, AccessPolicy>, knownUsers?: KnownUsers): Interceptor {
  return (next) => async (req) => {
    const policy = policyOf(policies, req.service.typeName, req.method.name);
    if (policy !== "public") {
      let principal = auth.authenticate(req.header.get("authorization"));
      // Trusted components (gateway processes) act for a user with the admin credential.
      const onBehalfOf = req.header.get(ON_BEHALF_OF_HEADER);
      if (onBehalfOf !== null) {
        if (principal.kind !== "admin") {
          throw new ConnectError(`${ON_BEHALF_OF_HEADER} needs the admin credential`, Code.PermissionDenied);
        }
        if (!/^[1-9]\d{0,18}$/.test(onBehalfOf) || BigInt(onBehalfOf) > MAX_ID) {
          throw new ConnectError(`${ON_BEHALF_OF_HEADER}: not a user id`, Code.InvalidArgument);
        }
        principal = { kind: "user", userId: BigInt(onBehalfOf) };
      }
      if (policy === "admin" && principal.kind !== "admin") {
        throw new ConnectError("this method needs the admin credential", Code.PermissionDenied);
      }
      if (policy === "user" && principal.kind !== "user") {
        throw new ConnectError("this method needs a user token", Code.PermissionDenied);
      }
      if (principal.kind === "user") await knownUsers?.require(principal.userId);
      req.contextValues.set(principalKey, principal);
    }
    return next(req);
  };
}

/** The header that carries a request's id, in and out. */
export const REQUEST_ID_HEADER = "x-request-id";
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface ObservabilityOptions {
  /** One info line per RPC when it ends: method, code, duration, user, request id (never tokens or texts). */
  accessLog: boolean;
  /** Attach a chat.v1.RequestInfo detail to every error (the x-request-id header is always sent). */
  requestInfoInErrors: boolean;
}

/**
 * Around every RPC: its request id (the caller's x-request-id, or a new one)
 * echoed in the response header and in every error's details; metrics by
 * method and code; the access log line; and an error line for failures that
 * are the server's.
 */
export function createObservabilityInterceptor(
  metrics: Pick<ApiMetrics, "rpcDuration" | "rpcRequests">,
  logger: Logger,
  options: ObservabilityOptions = { accessLog: true, requestInfoInErrors: true },
): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const started = performance.now();
    const given = req.header.get(REQUEST_ID_HEADER);
    const requestId = given !== null && VALID_REQUEST_ID.test(given) ? given : randomUUID();
    const done = (code: Code | "ok", err?: ConnectError) => {
      const seconds = (performance.now() - started) / 1000;
      const name = codeName(code);
      metrics.rpcDuration.observe({ method }, seconds);
      metrics.rpcRequests.inc({ method, code: name });
      const principal = req.contextValues.get(principalKey);
      const user = principal?.kind === "user" ? String(principal.userId) : principal?.kind;
      if (err && (err.code === Code.Internal || err.code === Code.Unknown)) {
        logger.error({ err: err.cause ?? err, method, requestId, user }, "rpc failed");
      } else if (options.accessLog) {
        logger.info({ method, code: name, ms: Math.round(seconds * 10_000) / 10, user, requestId }, "rpc");
      }
    };
    const failed = (err: unknown): ConnectError => {
      const e = toConnectError(err);
      e.metadata.set(REQUEST_ID_HEADER, requestId);
      if (options.requestInfoInErrors) e.details.push({ desc: RequestInfoSchema, value: { requestId } });
      done(e.code, e);
      return e;
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw failed(err);
    }
    res.header.set(REQUEST_ID_HEADER, requestId);
    if (!res.stream) {
      done("ok");
      return res;
    }
    // A stream is done when its last message is: time and code from there.
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let ended = false;
        try {
          yield* messages;
          ended = true;
          done("ok");
        } catch (err) {
          ended = true;
          throw failed(err);
        } finally {
          // Left early: the client went away.
          if (!ended) done(Code.Canceled);
        }
      })(),
    };
  };
}

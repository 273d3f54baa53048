/**
 * Server interceptors around every RPC: authentication by method policy,
 * error mapping (store errors to codes, internals never leaked), metrics and
 * a log line for failures.
 */
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../core/logger.js";
import type { ApiMetrics } from "../core/metrics.js";
import { ON_BEHALF_OF_HEADER, type Authenticator, type Principal } from "../chat/auth.js";
import type { KnownUsers } from "../chat/known-users.js";
import { MAX_ID } from "../core/ids.js";
import { toConnectError } from "../chat/errors.js";

/** Where the authentication interceptor leaves the caller for handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "principal" });

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

export function createObservabilityInterceptor(metrics: Pick<ApiMetrics, "rpcDuration" | "rpcRequests">, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const stopTimer = metrics.rpcDuration.startTimer({ method });
    try {
      const res = await next(req);
      metrics.rpcRequests.inc({ method, code: "ok" });
      return res;
    } catch (err) {
      const connectErr = toConnectError(err);
      metrics.rpcRequests.inc({ method, code: Code[connectErr.code] ?? String(connectErr.code) });
      if (connectErr.code === Code.Internal || connectErr.code === Code.Unknown) {
        logger.error({ err: connectErr.cause ?? err, method }, "rpc failed");
      } else {
        logger.debug({ method, code: Code[connectErr.code], msg: connectErr.rawMessage }, "rpc rejected");
      }
      throw connectErr;
    } finally {
      stopTimer();
    }
  };
}

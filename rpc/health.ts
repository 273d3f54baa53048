/**
 * Standard gRPC health checking (grpc.health.v1): Check, List and Watch for
 * the whole server ("") and each service, and the same answer for /healthz.
 * Shutdown flips every status to NOT_SERVING first, so load balancers stop
 * sending before the port closes; so does a dependency the node cannot
 * serve without (the store, its node id lease) while it is away.
 */
import { create, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
  HealthListResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";

export interface HealthState {
  /** Not draining, and every dependency there. */
  readonly serving: boolean;
  /** Why not, for /healthz ("shutting down", "not ready: store unreachable"); undefined while serving. */
  readonly reason: string | undefined;
  /** Marks every service NOT_SERVING for good (the drain) and ends Watch streams' waiting with that status. */
  setNotServing(): void;
  /** A dependency came or went: NOT_SERVING while any is away (`why` says what is missing). */
  setDependency(name: string, available: boolean, why?: string): void;
  /** Ends open Watch streams (at shutdown, after NOT_SERVING was sent). */
  closeWatchers(): void;
}

export function registerHealth(router: ConnectRouter, services: DescService[]): HealthState {
  const names = new Set(["", ...services.map((s) => s.typeName), Health.typeName]);
  let draining = false;
  /** Dependencies away now, with why. */
  const away = new Map<string, string>();
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const closer = new AbortController();
  const isServing = () => !draining && away.size === 0;
  const status = () => (isServing() ? Status.SERVING : Status.NOT_SERVING);

  router.service(Health, {
    async check(req) {
      if (!names.has(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status: status() });
    },
    async list() {
      return create(HealthListResponseSchema, {
        statuses: Object.fromEntries([...names].map((n) => [n, { status: status() }])),
      });
    },
    async *watch(req, ctx) {
      if (!names.has(req.service)) {
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        return;
      }
      yield create(HealthCheckResponseSchema, { status: status() });
      const signal = AbortSignal.any([ctx.signal, closer.signal]);
      try {
        for await (const _ of on(changes, "change", { signal })) {
          yield create(HealthCheckResponseSchema, { status: status() });
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    },
  });

  return {
    get serving() {
      return isServing();
    },
    get reason() {
      if (draining) return "shutting down";
      if (away.size === 0) return undefined;
      return `not ready: ${[...away.values()].join("; ")}`;
    },
    setNotServing() {
      if (draining) return;
      const was = isServing();
      draining = true;
      if (was) changes.emit("change");
    },
    setDependency(name, available, why) {
      const was = isServing();
      if (available) away.delete(name);
      else away.set(name, why ?? `${name} unavailable`);
      if (isServing() !== was) changes.emit("change");
    },
    closeWatchers() {
      closer.abort();
    },
  };
}

/**
 * Standard gRPC health checking (grpc.health.v1): Check, List and Watch for
 * the whole server ("") and each service. Shutdown flips every status to
 * NOT_SERVING first, so load balancers stop sending before the port closes.
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
  readonly serving: boolean;
  /** Marks every service NOT_SERVING and ends Watch streams' waiting with that status. */
  setNotServing(): void;
  /** Ends open Watch streams (at shutdown, after NOT_SERVING was sent). */
  closeWatchers(): void;
}

export function registerHealth(router: ConnectRouter, services: DescService[]): HealthState {
  const names = new Set(["", ...services.map((s) => s.typeName), Health.typeName]);
  let serving = true;
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const closer = new AbortController();
  const status = () => (serving ? Status.SERVING : Status.NOT_SERVING);

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
      return serving;
    },
    setNotServing() {
      if (!serving) return;
      serving = false;
      changes.emit("change");
    },
    closeWatchers() {
      closer.abort();
    },
  };
}

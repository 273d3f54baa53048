/** What the domain services need from the rest of the process, handed in by the composition root (app/api-node.ts). */
import type { IdGenerator } from "../core/ids.js";
import type { Logger } from "../core/logger.js";
import type { ApiMetrics } from "../core/metrics.js";
import type { ChatStore } from "../store/store.js";
import type { Authenticator } from "./auth.js";
import type { EventPublisher } from "./events.js";
import type { FastLog } from "../store/fast-log.js";

/** What the domain services need from the rest of the process. */
export interface ServiceDeps {
  store: ChatStore;
  ids: IdGenerator;
  events: EventPublisher;
  /** Where FAST channels' messages become durable. */
  fastLog: FastLog;
  auth: Authenticator;
  metrics: ApiMetrics;
  logger: Logger;
  /** Unix milliseconds; replaceable in tests. */
  now: () => number;
}

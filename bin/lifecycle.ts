/**
 * What every entry point does around its work: a bug that escapes every
 * handler ends the process (the supervisor restarts a clean one), and
 * SIGTERM or SIGINT stops it gracefully, a second signal at once.
 */
import type { Logger } from "../core/logger.js";
import { StartupError } from "../core/startup-error.js";

export function exitOnUncaught(logger: Logger): void {
  const die = (kind: string) => (err: unknown) => {
    logger.fatal({ err }, kind);
    logger.flush();
    process.exit(1);
  };
  process.on("uncaughtException", die("uncaught exception"));
  process.on("unhandledRejection", die("unhandled promise rejection"));
}

/**
 * A start that failed: one log line and exit 1. A StartupError says all an
 * operator needs (what, where, why); anything else is a bug and keeps its stack.
 */
export function exitStartupFailed(logger: Logger, err: unknown): never {
  if (err instanceof StartupError) logger.fatal(`start-up failed: ${err.message}`);
  else logger.fatal({ err }, "start-up failed");
  logger.flush();
  process.exit(1);
}

/**
 * Runs stop once, on the first of SIGTERM, SIGINT or a call of the returned
 * function (another reason to stop), then exits 0, or 1 if stopping failed.
 * A second signal exits at once.
 */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>, details: Record<string, unknown> = {}): (why: string) => void {
  let stopping = false;
  const begin = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why, ...details }, "shutting down");
    stop().then(
      () => {
        logger.info("stopped");
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        logger.flush();
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    begin(signal);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return begin;
}

/**
 * The process logger: pino, with credentials redacted wherever they appear.
 * JSON lines for log collectors; human-readable lines (pino-pretty) when
 * stdout is a terminal, so that `npm start` is readable as it runs.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export interface LoggerOptions {
  /** Human-readable lines instead of JSON; default: whether stdout is a terminal. */
  pretty?: boolean;
}

export function createLogger(level: string, base: Record<string, unknown> = {}, options: LoggerOptions = {}): Logger {
  const human = options.pretty ?? process.stdout.isTTY === true;
  const settings = {
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization", "headers.authorization", "adminToken", "jwtSecret"],
      censor: "[redacted]",
    },
  };
  if (!human) return pino(settings);
  // Synchronous, in this thread: a fatal line before exit must not be lost in a worker's queue.
  const stream: DestinationStream = pretty({ colorize: true, sync: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" });
  return pino(settings, stream);
}

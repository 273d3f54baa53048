/** The process logger: pino, structured JSON, with credentials redacted. */
import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs; credentials are redacted wherever they appear. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ["token", "*.token", "authorization", "*.authorization", "headers.authorization", "adminToken", "jwtSecret"],
      censor: "[redacted]",
    },
  });
}

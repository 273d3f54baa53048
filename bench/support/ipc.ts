/**
 * Request/reply over a forked load generator's IPC channel (why: every
 * benchmark driver talks to its worker processes the same way).
 */
import type { ChildProcess } from "node:child_process";

/** Sends `message` and resolves with the first message of type `reply`; rejects after `timeoutMs`, or if the child is gone. */
export function ask<T>(child: ChildProcess, message: object, reply: string, timeoutMs = 120_000, who = "load worker"): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (child.off("message", on), reject(new Error(`${who}: no "${reply}" in ${timeoutMs} ms`))), timeoutMs);
    const on = (m: { type: string }) => {
      if (m.type === reply) {
        clearTimeout(timer);
        child.off("message", on);
        resolve(m as T);
      }
    };
    child.on("message", on);
    if (!child.connected) return (clearTimeout(timer), child.off("message", on), reject(new Error(`${who}: gone`)));
    child.send(message, (err) => err && (clearTimeout(timer), child.off("message", on), reject(err)));
  });
}

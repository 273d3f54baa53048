/**
 * WAL checkpoints on a worker thread. SQLite's automatic checkpoint runs in
 * whichever commit crosses the threshold, on the event loop, and fsyncs the
 * WAL and the database file there: under load that froze every socket and
 * request of the process for up to half a second. A second connection on a
 * worker thread checkpoints PASSIVE (it never blocks the writer) every
 * CHECKPOINT_INTERVAL_MS instead; the automatic checkpoint stays only as a
 * backstop should the worker fall behind or die.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

export const CHECKPOINT_INTERVAL_MS = 250;
/** WAL pages (4 KiB) before a commit checkpoints itself: 64 MiB, far past what the worker lets build up. */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 16_384;

// CommonJS, evaluated by the worker: no build step or file of its own.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 1000");
let timer;
const tick = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (err) {
    parentPort.postMessage({ error: String(err) });
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Stops the worker (after its current checkpoint) and closes its connection. */
  stop(): Promise<void>;
}

/**
 * Starts checkpointing `file` off the event loop every intervalMs
 * (CHECKPOINT_INTERVAL_MS unless a test says otherwise); onFailure runs if the
 * worker cannot (the caller then goes back to automatic checkpoints).
 */
export function startCheckpointer(file: string, intervalMs: number, onFailure: (err: unknown) => void): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, driver, intervalMs } });
  worker.unref();
  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    onFailure(err);
  };
  worker.on("message", (m: { error?: string }) => m.error && fail(new Error(m.error)));
  worker.on("error", fail);
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  return {
    async stop() {
      // Referenced again while it stops: otherwise a process with nothing else
      // left to do would exit (code 0) in the middle of its shutdown.
      worker.ref();
      worker.postMessage("stop");
      await exited;
    },
  };
}

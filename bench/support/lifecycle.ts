/**
 * The process lifecycle every benchmark driver shares (why: one place that
 * makes sure nothing a benchmark started outlives it): stop actions run once,
 * in reverse order of registration, on success, error, timeout or signal; then
 * any child (or registered pid) still alive gets SIGTERM, then SIGKILL.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { alive, childrenOf, signal } from "./proc.js";

const cleanups: Array<{ name: string; run: () => Promise<void>; done: boolean }> = [];
const children = new Set<ChildProcess>();
/** pids to make sure of at the very end besides our own children (e.g. grandchildren). */
const knownPids = new Set<number>();
/** Temporary folders, removed at exit whatever happened. */
const tempDirs = new Set<string>();
let stopping = false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True once a signal or the hard timeout has started stopping everything. */
export const isStopping = (): boolean => stopping;

/** Registers a stop action; returns it, to run now (once) instead of at the end. */
export function onCleanup(name: string, run: () => Promise<void>): () => Promise<void> {
  const entry = { name, run, done: false };
  cleanups.push(entry);
  return async () => {
    if (entry.done) return;
    entry.done = true;
    await run().catch((err: unknown) => console.error(`stopping ${name} failed: ${err instanceof Error ? err.message : String(err)}`));
  };
}

/** Runs every stop action not run yet (newest first), then stops whatever child process is left. */
export async function cleanupAll(): Promise<void> {
  for (const entry of [...cleanups].reverse()) {
    if (entry.done) continue;
    entry.done = true;
    await entry.run().catch((err: unknown) => console.error(`stopping ${entry.name} failed: ${err instanceof Error ? err.message : String(err)}`));
  }
  // A child caught mid-start (before its harness handed it over) is still ours: stop it by its pid.
  const left = [...new Set([...knownPids, ...childrenOf(process.pid)])].filter(alive);
  for (const pid of left) signal(pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (left.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of left) if (alive(pid)) signal(pid, "SIGKILL");
}

/** A child process to SIGKILL at exit if it is still running then. */
export function track<C extends ChildProcess>(child: C): C {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** A pid (not necessarily our child) to stop at the end if it is still alive. */
export function trackPid(pid: number): void {
  knownPids.add(pid);
}

/** A temporary folder, removed at exit whatever happened. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// Last resort if the process exits before the cleanup finished: nothing outlives us.
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const pid of new Set([...knownPids, ...childrenOf(process.pid)])) if (alive(pid)) signal(pid, "SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * On SIGINT/SIGTERM (exit 130) or after `timeoutMinutes` (exit 1): stops
 * everything, calls `afterCleanup` (e.g. to write partial results) and exits;
 * a second one exits at once. Returns a function that disarms the timeout.
 */
export function stopOnSignalsAndTimeout(timeoutMinutes: number, afterCleanup?: (why: string) => void): () => void {
  const abort = (why: string, code: number) => {
    if (stopping) process.exit(code);
    stopping = true;
    console.error(`\n${why}: stopping everything the benchmark started...`);
    void cleanupAll().finally(() => {
      afterCleanup?.(why);
      process.exit(code);
    });
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => abort(sig, 130));
  const watchdog = setTimeout(() => abort(`timeout: the run exceeded ${timeoutMinutes} minutes (--timeout-minutes)`, 1), timeoutMinutes * 60_000);
  watchdog.unref();
  return () => clearTimeout(watchdog);
}

/** Runs a benchmark's main; on an uncaught error, stops everything and exits 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch(async (err: unknown) => {
    console.error(err);
    await cleanupAll();
    process.exit(1);
  });
}

/**
 * The data folder (SQLite file, generated secrets): created at start if
 * missing and checked writable, so that a wrong CHAT_DATA_DIR fails at once
 * with one clear sentence. Folders are created one level at a time:
 * `mkdirSync(..., { recursive: true })` loops forever under /proc on Node 20.
 */
import { closeSync, mkdirSync, openSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { StartupError } from "./startup-error.js";

/** Creates `dir` (and its missing parents) with `mode`; throws StartupError when it cannot. */
export function ensureDir(dir: string, mode = 0o755): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if (!statSync(d).isDirectory()) throw new StartupError(`${d} is not a folder`);
      break;
    } catch (err) {
      if (err instanceof StartupError) throw err;
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || path.dirname(d) === d) throw describe(d, err);
      missing.push(d);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw describe(d, err);
    }
  }
}

/** ensureDir, then proves the folder takes a new file. */
export function ensureWritableDataDir(dir: string): void {
  ensureDir(dir);
  const probe = path.join(dir, `.write-test-${process.pid}`);
  try {
    closeSync(openSync(probe, "wx", 0o600));
    rmSync(probe, { force: true });
  } catch (err) {
    throw describe(dir, err, "cannot write to the data folder (CHAT_DATA_DIR)");
  }
}

function describe(dir: string, err: unknown, what = "cannot create the data folder (CHAT_DATA_DIR)"): StartupError {
  return new StartupError(`${what} ${dir}: ${(err as Error).message ?? String(err)}`, { cause: err });
}

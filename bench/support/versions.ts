/**
 * Versions recorded with every result file (why: the drivers report the same
 * runtime, package and SQLite versions the same way).
 */
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import path from "node:path";

/** The installed version of each package (from node_modules), undefined where it is not installed. */
export function packageVersions(names: string[]): Record<string, string | undefined> {
  const pkg = (name: string) => {
    try {
      return (JSON.parse(readFileSync(path.join("node_modules", name, "package.json"), "utf8")) as { version: string }).version;
    } catch {
      return undefined;
    }
  };
  return Object.fromEntries(names.map((n) => [n, pkg(n)]));
}

/** The SQLite library better-sqlite3 runs, or undefined if it cannot be loaded. */
export function sqliteVersion(): string | undefined {
  try {
    const db = new Database(":memory:");
    const v = (db.prepare("select sqlite_version() as v").get() as { v: string }).v;
    db.close();
    return v;
  } catch {
    return undefined;
  }
}

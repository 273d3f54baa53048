/**
 * Secrets the single-node default needs but a first-time user has not set:
 * generated once into the data folder (mode 0600) so that they survive
 * restarts, and never logged.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ensureDir } from "./data-dir.js";

export interface ResolvedSecret {
  value: string;
  /** Where the value came from; the file path when it lives in the data folder. */
  source: "environment" | { file: string; generated: boolean };
}

export function resolveSecret(dataDir: string, name: string, provided: string | undefined): ResolvedSecret {
  if (provided !== undefined) return { value: provided, source: "environment" };
  const dir = path.join(dataDir, "secrets");
  const file = path.join(dir, name);
  ensureDir(dir, 0o700);
  try {
    // "wx": two processes starting at once on one folder agree on one value.
    writeFileSync(file, randomBytes(32).toString("base64url") + "\n", { flag: "wx", mode: 0o600 });
    return { value: readSecretFile(file), source: { file, generated: true } };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return { value: readSecretFile(file), source: { file, generated: false } };
  }
}

function readSecretFile(file: string): string {
  const value = readFileSync(file, "utf8").trim();
  if (value.length < 16) throw new Error(`secret file ${file} holds fewer than 16 characters`);
  return value;
}

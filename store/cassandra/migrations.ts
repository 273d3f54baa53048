/**
 * Versioned CQL schema: infra/cassandra/schema/NNN_name.cql, applied in order
 * into the store's keyspace, each once. Several API nodes may start at once:
 * a node claims a version with a lightweight transaction before applying it,
 * and the others wait until it is marked done.
 */
import type { Client } from "cassandra-driver";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface SchemaOptions {
  keyspace: string;
  /** CQL replication map, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}. */
  replication: string;
  /** How long to wait for another node applying a version. */
  waitMs?: number;
}

export interface SchemaFile {
  version: number;
  name: string;
  statements: string[];
}

/** infra/cassandra/schema, found upwards from this module (source or dist). */
export function schemaDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "infra", "cassandra", "schema");
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error("infra/cassandra/schema not found above the program");
}

export function readSchemaFiles(keyspace: string, dir = schemaDir()): SchemaFile[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.cql$/.test(f))
    .sort()
    .map((f) => {
      const text = readFileSync(path.join(dir, f), "utf8")
        .split("\n")
        .filter((line) => !line.trim().startsWith("--"))
        .join("\n")
        .replaceAll("{{KEYSPACE}}", keyspace);
      const statements = text
        .split(";")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      return { version: Number(f.slice(0, 3)), name: f, statements };
    });
}

const KEYSPACE_NAME = /^[a-z][a-z0-9_]{0,47}$/;

/** Creates the keyspace if needed and applies every schema version not applied yet; returns the versions it applied. */
export async function applySchema(client: Client, options: SchemaOptions): Promise<number[]> {
  const { keyspace } = options;
  if (!KEYSPACE_NAME.test(keyspace)) throw new Error(`keyspace name ${JSON.stringify(keyspace)} is not a valid CQL identifier`);
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = ${options.replication}`);
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${keyspace}.schema_versions (version int PRIMARY KEY, name text, state text, owner text)`,
  );
  const owner = `${hostname()}/${process.pid}`;
  const applied: number[] = [];
  for (const file of readSchemaFiles(keyspace)) {
    const claim = await client.execute(
      `INSERT INTO ${keyspace}.schema_versions (version, name, state, owner) VALUES (?, ?, 'applying', ?) IF NOT EXISTS`,
      [file.version, file.name, owner],
      { prepare: true },
    );
    if (claim.wasApplied()) {
      for (const statement of file.statements) await client.execute(statement);
      await client.execute(`UPDATE ${keyspace}.schema_versions SET state = 'done' WHERE version = ?`, [file.version], { prepare: true });
      applied.push(file.version);
      continue;
    }
    // Another node (or an earlier run) has it: wait until it is done.
    const deadline = Date.now() + (options.waitMs ?? 120_000);
    for (;;) {
      const row = await client.execute(`SELECT state, owner FROM ${keyspace}.schema_versions WHERE version = ?`, [file.version], {
        prepare: true,
      });
      if (row.first()?.get("state") === "done") break;
      if (Date.now() > deadline) {
        throw new Error(`schema version ${file.version} is being applied by ${row.first()?.get("owner")} and did not finish in time`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return applied;
}

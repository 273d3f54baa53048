/**
 * The house's one-way rule (ARCHITECTURE.md): every import of the product runs
 * down the layers, never up and never sideways into a neighbour of the same
 * layer; concrete adapters are named only by the composition roots (app/);
 * each native or driver package stays inside the one folder that wraps it.
 * Type-only imports count: a type is a dependency too.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/** Top-level product folders and their layer, highest first. */
export const LAYERS: Record<string, number> = {
  bin: 7,
  app: 6,
  gateway: 5,
  rpc: 5,
  realtime: 4,
  chat: 3,
  store: 2,
  bus: 2,
  core: 1,
  gen: 1,
};

/** Concrete adapters: modules that only app/ (and the adapter's own folder) may import. */
const ADAPTERS = [
  "store/sqlite/",
  "store/cassandra/",
  "store/jetstream/",
  "bus/local-bus.ts",
  "bus/nats-bus.ts",
  "bus/ipc-bus.ts",
];

/** Packages that only one folder may import. */
const CONFINED: Record<string, string> = {
  "uWebSockets.js": "gateway/",
  "better-sqlite3": "store/sqlite/",
  "cassandra-driver": "store/cassandra/",
};

const IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

export interface ImportEdge {
  from: string;
  /** The repository path of a relative import, or the package name. */
  to: string;
  relative: boolean;
}

export function importsOf(file: string, text: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith(".")) {
      const to = path.normalize(path.join(path.dirname(file), spec)).replace(/\.js$/, ".ts");
      edges.push({ from: file, to, relative: true });
    } else {
      edges.push({ from: file, to: spec, relative: false });
    }
  }
  return edges;
}

const topOf = (file: string) => file.split(path.sep)[0]!;

/** Every rule an edge breaks, as a sentence; empty when it keeps them all. */
export function violations(edge: ImportEdge): string[] {
  const problems: string[] = [];
  const fromTop = topOf(edge.from);
  const fromLayer = LAYERS[fromTop];
  if (fromLayer === undefined) return problems;
  if (edge.relative) {
    const toTop = topOf(edge.to);
    const toLayer = LAYERS[toTop];
    if (toLayer === undefined) {
      problems.push(`${edge.from} imports ${edge.to}: the product imports nothing outside its layers (tests, bench, infra)`);
    } else if (toTop !== fromTop && toLayer >= fromLayer) {
      problems.push(
        `${edge.from} imports ${edge.to}: ${fromTop}/ (layer ${fromLayer}) may import only lower layers, not ${toTop}/ (layer ${toLayer})`,
      );
    }
    const adapter = ADAPTERS.find((a) => edge.to.startsWith(a));
    if (adapter && fromTop !== "app" && !edge.from.startsWith(adapter.endsWith("/") ? adapter : path.dirname(adapter) + "/")) {
      problems.push(`${edge.from} imports ${edge.to}: concrete adapters are named only in app/`);
    }
  } else {
    const home = CONFINED[edge.to];
    if (home && !edge.from.startsWith(home)) problems.push(`${edge.from} imports ${edge.to}: only ${home} may use it`);
  }
  return problems;
}

describe("layers", () => {
  it("every import of the product runs down the layers, adapters are named only in app/, drivers stay in their folder", () => {
    const files = Object.keys(LAYERS).flatMap((top) => sources(top));
    expect(files.length).toBeGreaterThan(50);
    const problems = files.flatMap((file) => importsOf(file, readFileSync(file, "utf8")).flatMap(violations));
    expect(problems).toEqual([]);
  });

  it("the rule itself catches an import that runs up, one that runs sideways, a named adapter and a stray driver", () => {
    const check = (from: string, text: string) => importsOf(from, text).flatMap(violations);
    expect(check("store/store.ts", 'import { x } from "../chat/validate.js";')).toHaveLength(1);
    expect(check("store/fast-log.ts", 'import type { Subjects } from "../bus/subjects.js";')).toHaveLength(1);
    expect(check("rpc/server.ts", 'export { startGateway } from "../gateway/gateway.js";')).toHaveLength(1);
    expect(check("chat/events.ts", 'import { createLocalBus } from "../bus/local-bus.js";')).toHaveLength(1);
    expect(check("chat/events.ts", 'const m = await import("../test/support/api.js");')).toHaveLength(1);
    expect(check("rpc/server.ts", 'import uws from "uWebSockets.js";')).toHaveLength(1);
    expect(check("app/api-node.ts", 'import { createSqliteStore } from "../store/sqlite/sqlite-store.js";')).toEqual([]);
    expect(check("store/sqlite/sqlite-store.ts", 'import Database from "better-sqlite3";\nimport type { ChatStore } from "../store.js";')).toEqual([]);
    expect(check("gateway/gateway.ts", 'import {\n  EventSession,\n  type SessionEnv,\n} from "../realtime/event-session.js";')).toEqual([]);
  });
});

describe("configuration", () => {
  it("is read from the environment and the command line by core/config.ts alone", () => {
    const readers = Object.keys(LAYERS)
      .flatMap((top) => sources(top))
      .filter((file) => file !== path.join("core", "config.ts"))
      .filter((file) => /process\.(env|argv)\b/.test(readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "")));
    expect(readers).toEqual([]);
  });
});

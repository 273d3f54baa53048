/**
 * Benchmark parameters: CLI flag, else CHAT_BENCH_<FLAG>, else the --quick
 * preset, else the default (why: every driver reads its numeric flags the same way).
 */
import { parseArgs } from "node:util";

export interface NumericSpec {
  full: number;
  quick: number;
  what: string;
}

/** CHAT_BENCH_<FLAG> (dashes as underscores), undefined when unset or empty. */
export const envOf = (flag: string): string | undefined => process.env[`CHAT_BENCH_${flag.toUpperCase().replaceAll("-", "_")}`] || undefined;

/** A boolean flag, given on the command line or as CHAT_BENCH_<FLAG>=1|true|yes. */
export const flagOn = (cli: Record<string, string | boolean | undefined>, flag: string): boolean =>
  cli[flag] === true || ["1", "true", "yes"].includes(envOf(flag) ?? "");

/**
 * Parses --quick, the numeric flags of `numeric` (non-negative; whole numbers
 * with `integers`) and the other `flags`, which stay raw in `cli`.
 */
export function benchParams<N extends string>(
  numeric: Record<N, NumericSpec>,
  flags: Record<string, { type: "string" | "boolean" }> = {},
  integers = false,
): { cli: Record<string, string | boolean | undefined>; quick: boolean; P: Record<N, number> } {
  const { values } = parseArgs({
    options: { quick: { type: "boolean" }, ...flags, ...Object.fromEntries(Object.keys(numeric).map((k) => [k, { type: "string" as const }])) },
  });
  const cli = values as Record<string, string | boolean | undefined>;
  const quick = flagOn(cli, "quick");
  const P = {} as Record<N, number>;
  for (const [flag, spec] of Object.entries(numeric) as Array<[N, NumericSpec]>) {
    const raw = (cli[flag] as string | undefined) ?? envOf(flag);
    const value = raw === undefined ? (quick ? spec.quick : spec.full) : Number(raw);
    if (integers ? !Number.isInteger(value) || value < 0 : !Number.isFinite(value) || value < 0) {
      throw new Error(`--${flag}: expected a non-negative ${integers ? "integer" : "number"} (${spec.what}), got ${raw}`);
    }
    P[flag] = value;
  }
  return { cli, quick, P };
}

/**
 * The runner's side of the metrics: merges the deltas of every process into
 * totals and per-second series, evaluates k6-style thresholds, and prints the
 * end-of-test summary as k6 lays it out.
 */
import { Histogram, registry, type MetricKind, type MetricsDelta, type TrendStats } from "./scenario-metrics.js";
import { parseDuration, type Threshold, type Totals } from "./scenario.js";

export class Aggregator {
  readonly counters = new Map<string, number>();
  readonly rates = new Map<string, [number, number]>();
  readonly trends = new Map<string, Histogram>();
  readonly checks = new Map<string, [number, number]>();
  readonly kinds = new Map<string, MetricKind>();
  private gaugeBySource = new Map<string, Record<string, number>>();
  readonly gaugeStats = new Map<string, { value: number; min: number; max: number }>();
  /** Per second since startAt: counter increments, trend histograms, gauge sums (last seen in the second). */
  readonly series = {
    counters: new Map<string, number[]>(),
    trends: new Map<string, Histogram[]>(),
    gauges: new Map<string, number[]>(),
  };
  startAt: number | undefined;
  endAt: number | undefined;
  /** Counters computed by finalize(), not measured. */
  readonly derived = new Set<string>();

  constructor() {
    for (const [name, d] of registry.definitions) this.kinds.set(name, d.kind);
  }

  private kind(name: string, seen: MetricKind): void {
    if (!this.kinds.has(name)) this.kinds.set(name, seen);
  }

  /**
   * Merges a delta sent at t (shared clock) covering the previous spanMs:
   * it counts in the second that holds the middle of its span.
   */
  merge(source: string, delta: MetricsDelta, t: number, spanMs = 0): void {
    const mid = t - spanMs / 2;
    const sec = this.startAt !== undefined && mid >= this.startAt ? Math.floor((mid - this.startAt) / 1000) : -1;
    for (const [name, v] of Object.entries(delta.counters)) {
      this.kind(name, "counter");
      this.counters.set(name, (this.counters.get(name) ?? 0) + v);
      if (sec >= 0) at(this.series.counters, name, sec, 0, (x) => x + v);
    }
    for (const [name, [pass, total]] of Object.entries(delta.rates)) {
      this.kind(name, "rate");
      const r = this.rates.get(name) ?? [0, 0];
      this.rates.set(name, [r[0] + pass, r[1] + total]);
    }
    for (const [name, data] of Object.entries(delta.trends)) {
      this.kind(name, "trend");
      let h = this.trends.get(name);
      if (!h) this.trends.set(name, (h = new Histogram()));
      h.merge(data);
      if (sec >= 0) {
        const list = this.series.trends.get(name) ?? [];
        this.series.trends.set(name, list);
        (list[sec] ??= new Histogram()).merge(data);
      }
    }
    for (const [name, [pass, fail]] of Object.entries(delta.checks)) {
      const c = this.checks.get(name) ?? [0, 0];
      this.checks.set(name, [c[0] + pass, c[1] + fail]);
    }
    if (Object.keys(delta.gauges).length) {
      this.gaugeBySource.set(source, { ...this.gaugeBySource.get(source), ...delta.gauges });
      const sums = new Map<string, number>();
      for (const g of this.gaugeBySource.values()) for (const [name, v] of Object.entries(g)) sums.set(name, (sums.get(name) ?? 0) + v);
      for (const [name, v] of sums) {
        this.kind(name, "gauge");
        const s = this.gaugeStats.get(name);
        if (sec < 0 && s === undefined) this.gaugeStats.set(name, { value: v, min: Infinity, max: -Infinity });
        else if (sec >= 0) {
          const st = s ?? { value: v, min: v, max: v };
          st.value = v;
          st.min = Math.min(st.min, v);
          st.max = Math.max(st.max, v);
          this.gaugeStats.set(name, st);
          at(this.series.gauges, name, sec, 0, () => v);
        } else if (s) s.value = v;
      }
    }
  }

  /** Seconds from the start of the iterations to now (or to the end). */
  /** Counters and trends that got values only before the iterations (setup, setupWorker). */
  setupOnly(name: string): boolean {
    if (this.derived.has(name)) return false;
    const kind = this.kinds.get(name);
    if (kind === "counter") return this.counters.has(name) && !this.series.counters.has(name);
    if (kind === "trend") return this.trends.has(name) && !this.series.trends.has(name);
    return false;
  }

  elapsedSeconds(nowMs: number): number {
    if (this.startAt === undefined) return 0;
    return Math.max(0.001, ((this.endAt ?? nowMs) - this.startAt) / 1000);
  }

  totals(nowMs: number): Totals {
    return {
      counter: (n) => this.counters.get(n) ?? 0,
      rate: (n) => {
        const r = this.rates.get(n);
        return r && r[1] ? r[0] / r[1] : NaN;
      },
      gauge: (n) => this.gaugeStats.get(n)?.value ?? 0,
      trendCount: (n) => this.trends.get(n)?.count ?? 0,
      elapsedSeconds: this.elapsedSeconds(nowMs),
    };
  }

  /** The figures thresholds are evaluated against, per metric. */
  values(name: string, nowMs: number): Record<string, number> | undefined {
    const kind = this.kinds.get(name);
    switch (kind) {
      case "counter": {
        const count = this.counters.get(name) ?? 0;
        // A counter filled during setup only has no meaningful rate over the iterations.
        return { count, rate: this.setupOnly(name) ? NaN : count / this.elapsedSeconds(nowMs) };
      }
      case "rate": {
        const r = this.rates.get(name) ?? [0, 0];
        return { rate: r[1] ? r[0] / r[1] : NaN, passes: r[0], fails: r[1] - r[0] };
      }
      case "gauge": {
        const g = this.gaugeStats.get(name);
        return g ? { value: g.value, min: Number.isFinite(g.min) ? g.min : g.value, max: Number.isFinite(g.max) ? g.max : g.value } : { value: 0, min: 0, max: 0 };
      }
      case "trend": {
        const h = this.trends.get(name) ?? new Histogram();
        const s = h.stats();
        return { ...s, "p(50)": s.med, "p(90)": s.p90, "p(95)": s.p95, "p(99)": s.p99 };
      }
      default:
        return undefined;
    }
  }

  trendStats(name: string): TrendStats {
    return (this.trends.get(name) ?? new Histogram()).stats();
  }
}

function at(map: Map<string, number[]>, name: string, i: number, fill: number, f: (x: number) => number): void {
  let list = map.get(name);
  if (!list) map.set(name, (list = []));
  while (list.length <= i) list.push(fill);
  list[i] = f(list[i]!);
}

// ---------------------------------------------------------------- thresholds

export interface ParsedThreshold {
  metric: string;
  source: string;
  aggregation: string;
  /** For p(N): N / 100. */
  quantile?: number;
  op: "<" | "<=" | ">" | ">=" | "==" | "!=";
  value: number;
  abortOnFail: boolean;
  delayAbortEvalMs: number;
}

export interface ThresholdOutcome extends ParsedThreshold {
  ok: boolean;
  actual: number;
}

const EXPRESSION = /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*$/i;
const ALLOWED: Record<MetricKind, string[]> = {
  counter: ["count", "rate"],
  gauge: ["value", "min", "max"],
  rate: ["rate"],
  trend: ["avg", "min", "max", "med", "count", "p"],
};

export function parseThresholds(spec: Record<string, Threshold[]>, kinds: Map<string, MetricKind>): ParsedThreshold[] {
  const out: ParsedThreshold[] = [];
  for (const [metric, list] of Object.entries(spec)) {
    const kind = kinds.get(metric);
    if (!kind) throw new Error(`threshold on ${metric}: no such metric (declared: ${[...kinds.keys()].sort().join(", ")})`);
    for (const t of list) {
      const source = typeof t === "string" ? t : t.threshold;
      const m = EXPRESSION.exec(source);
      if (!m) throw new Error(`threshold ${metric}: ${JSON.stringify(source)} is not "<aggregation> <op> <number>" (e.g. "p(99)<10", "rate>0.99", "count==0")`);
      const aggregation = m[2] !== undefined ? "p" : m[1]!.toLowerCase();
      if (!ALLOWED[kind].includes(aggregation)) throw new Error(`threshold ${metric}: ${aggregation} does not apply to a ${kind} (use ${ALLOWED[kind].join(", ")})`);
      const op = (m[3] === "===" ? "==" : m[3]) as ParsedThreshold["op"];
      out.push({
        metric,
        source,
        aggregation,
        ...(m[2] !== undefined && { quantile: Number(m[2]) / 100 }),
        op,
        value: Number(m[4]),
        abortOnFail: typeof t === "object" && t.abortOnFail === true,
        delayAbortEvalMs: typeof t === "object" && t.delayAbortEval ? parseDuration(t.delayAbortEval) : 0,
      });
    }
  }
  return out;
}

export function evaluateThreshold(t: ParsedThreshold, agg: Aggregator, nowMs: number): ThresholdOutcome {
  let actual: number;
  if (t.aggregation === "p") actual = (agg.trends.get(t.metric) ?? new Histogram()).quantile(t.quantile!);
  else actual = agg.values(t.metric, nowMs)?.[t.aggregation] ?? NaN;
  const v = t.value;
  // NaN (a trend without samples, a rate without adds) fails every comparison but !=.
  const ok =
    t.op === "<" ? actual < v : t.op === "<=" ? actual <= v : t.op === ">" ? actual > v : t.op === ">=" ? actual >= v : t.op === "==" ? actual === v : actual !== v;
  return { ...t, ok, actual };
}

// ---------------------------------------------------------------- summary

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  if (ms === 0) return "0s";
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 0)}µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${((ms % 60_000) / 1000).toFixed(1)}s`;
}

export function formatNumber(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return "n/a";
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(digits);
}

function actualText(o: ThresholdOutcome, isTime: boolean): string {
  const name = o.aggregation === "p" ? `p(${formatNumber(o.quantile! * 100)})` : o.aggregation;
  const time = isTime && !["count", "rate"].includes(o.aggregation);
  return `${name}=${time ? formatMs(o.actual) : formatNumber(o.actual, o.aggregation === "rate" ? 4 : 2)}`;
}

export function renderSummary(agg: Aggregator, outcomes: ThresholdOutcome[], header: string[], nowMs: number): string {
  const lines: string[] = [""];
  for (const h of header) lines.push(`     ${h}`);
  lines.push("");

  if (outcomes.length) {
    lines.push("  █ THRESHOLDS", "");
    const byMetric = new Map<string, ThresholdOutcome[]>();
    for (const o of outcomes) byMetric.set(o.metric, [...(byMetric.get(o.metric) ?? []), o]);
    for (const [metric, list] of byMetric) {
      lines.push(`    ${metric}`);
      const isTime = registry.definitions.get(metric)?.isTime ?? agg.kinds.get(metric) === "trend";
      for (const o of list) lines.push(`    ${o.ok ? "✓" : "✗"} '${o.source}' ${actualText(o, isTime)}`);
      lines.push("");
    }
  }

  lines.push("  █ TOTAL RESULTS", "");
  if (agg.checks.size) {
    for (const [name, [pass, fail]] of agg.checks) {
      if (fail === 0) lines.push(`    ✓ ${name}`);
      else {
        lines.push(`    ✗ ${name}`);
        lines.push(`     ↳  ${Math.floor((pass / (pass + fail)) * 100)}% — ✓ ${pass} / ✗ ${fail}`);
      }
    }
    lines.push("");
  }
  const failedMetrics = new Set(outcomes.filter((o) => !o.ok).map((o) => o.metric));
  const withThresholds = new Set(outcomes.map((o) => o.metric));
  const names = [...agg.kinds.keys()].filter((n) => {
    const k = agg.kinds.get(n);
    if (k === "counter") return agg.counters.has(n) || withThresholds.has(n);
    if (k === "rate") return agg.rates.has(n);
    if (k === "trend") return agg.trends.has(n);
    return agg.gaugeStats.has(n);
  });
  names.sort();
  const width = Math.max(30, ...names.map((n) => n.length + 3));
  const elapsed = agg.elapsedSeconds(nowMs);
  for (const name of names) {
    const kind = agg.kinds.get(name)!;
    const mark = failedMetrics.has(name) ? "✗ " : withThresholds.has(name) ? "✓ " : "  ";
    const label = `${name}${".".repeat(Math.max(2, width - name.length))}:`;
    let text: string;
    if (kind === "counter") {
      const c = agg.counters.get(name) ?? 0;
      text = `${formatNumber(c)}`.padEnd(10) + (agg.setupOnly(name) ? " (during setup)" : ` ${(c / elapsed).toFixed(2)}/s`);
    } else if (kind === "rate") {
      const [pass, total] = agg.rates.get(name) ?? [0, 0];
      text = `${total ? ((pass / total) * 100).toFixed(2) : "n/a"}%`.padEnd(8) + ` ✓ ${pass}`.padEnd(12) + ` ✗ ${total - pass}`;
    } else if (kind === "gauge") {
      const g = agg.gaugeStats.get(name)!;
      const min = Number.isFinite(g.min) ? g.min : g.value;
      const max = Number.isFinite(g.max) ? g.max : g.value;
      text = `${formatNumber(g.value)}`.padEnd(10) + ` min=${formatNumber(min)}`.padEnd(14) + ` max=${formatNumber(max)}`;
    } else {
      const s = agg.trendStats(name);
      const isTime = registry.definitions.get(name)?.isTime ?? true;
      const f = isTime ? formatMs : (x: number) => formatNumber(x);
      text = [`avg=${f(s.avg)}`, `min=${f(s.min)}`, `p(50)=${f(s.med)}`, `p(90)=${f(s.p90)}`, `p(95)=${f(s.p95)}`, `p(99)=${f(s.p99)}`, `max=${f(s.max)}`, `count=${s.count}`]
        .map((x) => x.padEnd(14))
        .join(" ")
        .trimEnd();
      if (agg.setupOnly(name)) text += " (during setup)";
    }
    lines.push(`  ${mark}${label} ${text}`);
  }
  lines.push("");
  return lines.join("\n");
}

/**
 * Metrics of the scenario runner, shaped like k6's: Counter, Gauge, Rate,
 * Trend and check(). A scenario declares them at module level (k6's init
 * context); every process that imports the scenario (the runner and its
 * worker processes) gets the same names. Workers send deltas to the runner,
 * which merges them, so nothing here keeps raw samples: a Trend is a
 * log-bucketed histogram (relative error under 0.5 %, mergeable, fixed size).
 */

/** A clock shared by every process on the machine (CLOCK_MONOTONIC), in milliseconds. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

const GAMMA = 1.01;
const LOG_GAMMA = Math.log(GAMMA);
/** Bucket of values <= 0. */
const ZERO_KEY = -1_000_000;

/** Values v in (GAMMA^(k-1), GAMMA^k] go to bucket k (DDSketch-style). */
export class Histogram {
  buckets = new Map<number, number>();
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  add(v: number): void {
    const k = v <= 0 ? ZERO_KEY : Math.ceil(Math.log(v) / LOG_GAMMA);
    this.buckets.set(k, (this.buckets.get(k) ?? 0) + 1);
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(h: HistogramData | Histogram): void {
    const pairs = h instanceof Histogram ? h.buckets.entries() : h.buckets;
    for (const [k, n] of pairs) this.buckets.set(k, (this.buckets.get(k) ?? 0) + n);
    this.count += h.count;
    this.sum += h.sum;
    if (h.min < this.min) this.min = h.min;
    if (h.max > this.max) this.max = h.max;
  }

  /** Nearest-rank quantile (q in 0..1), within 0.5 % of the true sample, clamped to [min, max]. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    const keys = [...this.buckets.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.buckets.get(k)!;
      if (seen >= rank) {
        const v = k === ZERO_KEY ? 0 : (2 * GAMMA ** k) / (GAMMA + 1);
        return Math.min(this.max, Math.max(this.min, v));
      }
    }
    return this.max;
  }

  toData(): HistogramData {
    return { count: this.count, sum: this.sum, min: this.min, max: this.max, buckets: [...this.buckets.entries()] };
  }

  stats(): TrendStats {
    return {
      count: this.count,
      avg: this.count ? this.sum / this.count : NaN,
      min: this.count ? this.min : NaN,
      med: this.quantile(0.5),
      p90: this.quantile(0.9),
      p95: this.quantile(0.95),
      p99: this.quantile(0.99),
      max: this.count ? this.max : NaN,
    };
  }
}

export interface HistogramData {
  count: number;
  sum: number;
  min: number;
  max: number;
  buckets: Array<[number, number]>;
}

export interface TrendStats {
  count: number;
  avg: number;
  min: number;
  med: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export type MetricKind = "counter" | "gauge" | "rate" | "trend";

/** What one process measured since its previous delta. */
export interface MetricsDelta {
  counters: Record<string, number>;
  /** Current value of each gauge in this process (not a difference). */
  gauges: Record<string, number>;
  /** [non-zero adds, adds] */
  rates: Record<string, [number, number]>;
  trends: Record<string, HistogramData>;
  /** [passes, fails] per check name. */
  checks: Record<string, [number, number]>;
}

interface Definition {
  kind: MetricKind;
  /** Trends: the values are times in milliseconds (printed as durations). */
  isTime: boolean;
}

class Registry {
  readonly definitions = new Map<string, Definition>();
  private counters = new Map<string, number>();
  private gauges = new Map<string, number>();
  private rates = new Map<string, [number, number]>();
  private trends = new Map<string, Histogram>();
  private checks = new Map<string, [number, number]>();

  define(name: string, kind: MetricKind, isTime = false): void {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`metric name ${JSON.stringify(name)}: letters, digits and _ only`);
    const known = this.definitions.get(name);
    if (known && known.kind !== kind) throw new Error(`metric ${name} is already a ${known.kind}`);
    this.definitions.set(name, { kind, isTime });
  }
  addCounter(name: string, v: number): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + v);
  }
  setGauge(name: string, v: number): void {
    this.gauges.set(name, v);
  }
  addRate(name: string, ok: boolean): void {
    const r = this.rates.get(name);
    if (r) {
      if (ok) r[0]++;
      r[1]++;
    } else this.rates.set(name, [ok ? 1 : 0, 1]);
  }
  addTrend(name: string, v: number): void {
    let h = this.trends.get(name);
    if (!h) this.trends.set(name, (h = new Histogram()));
    h.add(v);
  }
  addCheck(name: string, ok: boolean): void {
    const c = this.checks.get(name);
    if (c) c[ok ? 0 : 1]++;
    else this.checks.set(name, ok ? [1, 0] : [0, 1]);
    this.addRate("checks", ok);
  }
  /** Everything since the previous take; gauges as they stand. */
  take(): MetricsDelta {
    const delta: MetricsDelta = {
      counters: Object.fromEntries(this.counters),
      gauges: Object.fromEntries(this.gauges),
      rates: Object.fromEntries(this.rates),
      trends: Object.fromEntries([...this.trends].map(([k, h]) => [k, h.toData()])),
      checks: Object.fromEntries(this.checks),
    };
    this.counters = new Map();
    this.rates = new Map();
    this.trends = new Map();
    this.checks = new Map();
    return delta;
  }
}

/** One registry per process. */
export const registry = new Registry();

/** A cumulative sum (k6 Counter): shown as count and count per second. */
export class Counter {
  constructor(readonly name: string) {
    registry.define(name, "counter");
  }
  add(v = 1): void {
    registry.addCounter(this.name, v);
  }
}

/** A value that goes up and down (k6 Gauge); per process, summed over worker processes. */
export class Gauge {
  constructor(readonly name: string) {
    registry.define(name, "gauge");
  }
  add(v: number): void {
    registry.setGauge(this.name, v);
  }
}

/** The share of non-zero values added (k6 Rate). */
export class Rate {
  constructor(readonly name: string) {
    registry.define(name, "rate");
  }
  add(v: boolean | number): void {
    registry.addRate(this.name, v !== false && v !== 0);
  }
}

/** A distribution (k6 Trend): avg, min, med, p(90), p(95), p(99), max. isTime: values in milliseconds. */
export class Trend {
  constructor(
    readonly name: string,
    readonly isTime = true,
  ) {
    registry.define(name, "trend", isTime);
  }
  add(v: number): void {
    registry.addTrend(this.name, v);
  }
}

/** k6's check(): runs each named predicate on value, counts passes and fails; true when all passed. */
export function check<T>(value: T, checks: Record<string, (v: T) => boolean>): boolean {
  let all = true;
  for (const [name, predicate] of Object.entries(checks)) {
    let ok: boolean;
    try {
      ok = predicate(value) === true;
    } catch {
      ok = false;
    }
    registry.addCheck(name, ok);
    all &&= ok;
  }
  return all;
}

/** Built-in metrics, as k6 names them. */
export const builtin = {
  iterations: new Counter("iterations"),
  iterationDuration: new Trend("iteration_duration"),
  droppedIterations: new Counter("dropped_iterations"),
  interruptedIterations: new Counter("interrupted_iterations"),
  iterationErrors: new Counter("iteration_errors"),
  vus: new Gauge("vus"),
  vusMax: new Gauge("vus_max"),
  checks: new Rate("checks"),
  /** How late a 20 ms timer fires in each load-generator process: when high, the generator itself delayed what it measured. */
  workerLoopDelay: new Trend("worker_loop_delay"),
};

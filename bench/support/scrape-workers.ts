/**
 * /metrics of every gateway process behind shared ports: gateway workers
 * listen on the same addresses (SO_REUSEPORT), so one GET reaches whichever
 * process the kernel picks. Each GET here opens a new TCP connection (no
 * keep-alive) from a fresh source port, so repeated GETs land on every
 * process. The metrics name no process id: a process is told apart by its
 * start time (whole seconds) and its chat_gateway_connections gauge, which
 * differ between workers while sockets are held steady (two workers with
 * the same start second and the same count would be taken for one).
 */
import http from "node:http";

export type Samples = Record<string, number>;

function getMetrics(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: "/metrics", agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** Prometheus text → samples whose name starts with one of prefixes (name{labels} → value). */
export function parseSamples(text: string, prefixes: string[]): Samples {
  const out: Samples = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !prefixes.some((p) => line.startsWith(p))) continue;
    const i = line.lastIndexOf(" ");
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

/** Prometheus samples whose names start with one of `names`, from one GET of a /metrics URL; {} if unreachable. */
export async function scrape(url: string, names: string[]): Promise<Samples> {
  try {
    return parseSamples(await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text(), names);
  } catch {
    return {};
  }
}

/** Scrapes until `processes` distinct processes answered (or `attempts` GETs), keyed by start time and connection count. */
export async function scrapeEveryProcess(
  addresses: Array<{ host: string; port: number }>,
  processes: number,
  prefixes: string[],
  attempts = 200,
): Promise<Map<string, Samples>> {
  const seen = new Map<string, Samples>();
  for (let i = 0; i < attempts && seen.size < processes; i++) {
    const a = addresses[i % addresses.length]!;
    try {
      const text = await getMetrics(a.host, a.port, 5000);
      const who = parseSamples(text, ["chat_process_start_time_seconds", "chat_gateway_connections"]);
      const start = who["chat_process_start_time_seconds"];
      if (start === undefined) continue;
      seen.set(`${start}/${who["chat_gateway_connections"] ?? "?"}`, parseSamples(text, prefixes));
    } catch {
      // a busy process; try again
    }
  }
  return seen;
}

/** Sums each sample over processes. */
export function sumSamples(all: Iterable<Samples>): Samples {
  const out: Samples = {};
  for (const s of all) for (const [k, v] of Object.entries(s)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** after − before, per sample, leaving out what did not change. */
export function grownSamples(before: Samples, after: Samples): Samples {
  return Object.fromEntries(Object.entries(after).flatMap(([k, v]) => (v - (before[k] ?? 0) !== 0 ? [[k, v - (before[k] ?? 0)]] : [])));
}

/**
 * The q-quantile (0..1) of a Prometheus histogram from its cumulative
 * `<name>_bucket{…le="…"}` samples (summed over label sets), interpolated
 * linearly inside the bucket as Prometheus's histogram_quantile does;
 * undefined when it holds no observations.
 */
export function histogramQuantile(samples: Samples, name: string, q: number): number | undefined {
  const byBound = new Map<number, number>();
  for (const [key, value] of Object.entries(samples)) {
    if (!key.startsWith(`${name}_bucket{`)) continue;
    const le = /le="([^"]+)"/.exec(key)?.[1];
    if (le === undefined) continue;
    const bound = le === "+Inf" ? Infinity : Number(le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + value);
  }
  const buckets = [...byBound].sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      // Above the highest finite bound Prometheus answers that bound.
      if (bound === Infinity) return lowerBound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / Math.max(1, count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

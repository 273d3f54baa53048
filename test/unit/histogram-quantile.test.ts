/** The benchmarks' reading of Prometheus histograms (figures in bench results come from it). */
import { describe, expect, it } from "vitest";
import { histogramQuantile, parseSamples } from "../../bench/support/scrape-workers.js";

const text = [
  "# HELP x_seconds a histogram",
  'x_seconds_bucket{le="0.001",delivery="persisted"} 10',
  'x_seconds_bucket{le="0.01",delivery="persisted"} 90',
  'x_seconds_bucket{le="0.1",delivery="persisted"} 100',
  'x_seconds_bucket{le="+Inf",delivery="persisted"} 100',
  'x_seconds_bucket{le="0.001",delivery="fast"} 0',
  'x_seconds_bucket{le="0.01",delivery="fast"} 0',
  'x_seconds_bucket{le="0.1",delivery="fast"} 0',
  'x_seconds_bucket{le="+Inf",delivery="fast"} 100',
  "x_seconds_count 200",
].join("\n");

describe("histogramQuantile", () => {
  const samples = parseSamples(text, ["x_seconds_bucket"]);

  it("sums label sets and interpolates inside the bucket", () => {
    // 200 observations: 10 ≤ 1 ms, 90 ≤ 10 ms, 100 ≤ 100 ms, 100 above.
    expect(histogramQuantile(samples, "x_seconds", 0.05)).toBeCloseTo(0.001, 6);
    expect(histogramQuantile(samples, "x_seconds", 0.25)).toBeCloseTo(0.001 + 0.009 * (40 / 80), 6);
  });

  it("answers the highest finite bound for ranks in +Inf, and undefined when empty", () => {
    expect(histogramQuantile(samples, "x_seconds", 0.99)).toBe(0.1);
    expect(histogramQuantile({}, "x_seconds", 0.5)).toBeUndefined();
  });
});

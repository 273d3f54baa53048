/**
 * A tiny SVG renderer for benchmark results, no dependencies: panels of
 * grouped bars (latency percentiles per trend, with threshold lines) and
 * panels of lines (a value per second), stacked in one self-contained file
 * that any browser shows.
 */

export interface Bar {
  label: string;
  value: number;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
  /** Horizontal markers across the group, e.g. a threshold. */
  markers?: Array<{ value: number; label: string; ok?: boolean }>;
}

export interface BarPanel {
  kind: "bars";
  title: string;
  unit: string;
  groups: BarGroup[];
}

export interface LineSeries {
  label: string;
  points: Array<[number, number]>;
}

export interface LinePanel {
  kind: "lines";
  title: string;
  unit: string;
  xLabel: string;
  series: LineSeries[];
}

export interface ChartDocument {
  title: string;
  subtitle: string[];
  panels: Array<BarPanel | LinePanel>;
}

const WIDTH = 980;
const LEFT = 76;
const RIGHT = 24;
const PALETTE = ["#4e79a7", "#59a14f", "#edc948", "#f28e2b", "#e15759", "#76b7b2", "#b07aa1", "#9c755f", "#bab0ac", "#ff9da7"];

export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 3 significant digits, no exponent for ordinary sizes. */
export function compact(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a === 0) return "0";
  return String(Number(v.toPrecision(3)));
}

/** About `count` round tick values covering [0, max]. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** 1-2-5 ticks per decade covering [min, max] (both > 0). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min / 1.0001 && v <= max * 1.0001) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks;
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`;
}

function legend(items: Array<{ label: string; color: string }>, y: number): string {
  let x = WIDTH - RIGHT;
  const out: string[] = [];
  for (const item of [...items].reverse()) {
    const w = item.label.length * 6.2 + 22;
    x -= w;
    out.push(`<rect x="${x.toFixed(1)}" y="${y - 9}" width="11" height="11" fill="${item.color}"/>`, text(x + 15, y, item.label, 'font-size="11"'));
  }
  return out.join("");
}

function barPanel(p: BarPanel, top: number): { svg: string; height: number } {
  const height = 300;
  const plotTop = top + 40;
  const plotBottom = top + height - 48;
  const plotHeight = plotBottom - plotTop;
  const values = p.groups.flatMap((g) => [...g.bars.map((b) => b.value), ...(g.markers ?? []).map((m) => m.value)]).filter((v) => Number.isFinite(v));
  const positive = values.filter((v) => v > 0);
  const max = Math.max(...values, 0);
  const minPos = positive.length ? Math.min(...positive) : 1;
  const log = positive.length > 0 && max / minPos > 50;
  let y: (v: number) => number;
  let ticks: number[];
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(minPos));
    const hi = 10 ** Math.ceil(Math.log10(max));
    ticks = logTicks(lo, hi);
    y = (v) => plotBottom - (plotHeight * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  } else {
    ticks = niceTicks(max || 1);
    const top = ticks[ticks.length - 1]!;
    y = (v) => plotBottom - (plotHeight * Math.max(0, v)) / top;
  }
  const out: string[] = [];
  out.push(text(LEFT, top + 18, p.title, 'font-size="14" font-weight="bold"'));
  out.push(text(LEFT - 8, plotTop - 10, `${p.unit}${log ? " (log)" : ""}`, 'font-size="10" text-anchor="end" fill="#555"'));
  for (const t of ticks) {
    const ty = y(t);
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(text(LEFT - 6, ty + 3.5, compact(t), 'font-size="10" text-anchor="end" fill="#555"'));
  }
  out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${plotBottom}" y2="${plotBottom}" stroke="#333"/>`);
  const labels = [...new Set(p.groups.flatMap((g) => g.bars.map((b) => b.label)))];
  const color = (label: string) => PALETTE[labels.indexOf(label) % PALETTE.length]!;
  out.push(legend(labels.map((l) => ({ label: l, color: color(l) })), top + 18));
  const groupWidth = (WIDTH - LEFT - RIGHT) / Math.max(1, p.groups.length);
  p.groups.forEach((g, gi) => {
    const gx = LEFT + gi * groupWidth;
    const inner = groupWidth * 0.8;
    const barWidth = Math.min(40, inner / Math.max(1, g.bars.length));
    const start = gx + (groupWidth - barWidth * g.bars.length) / 2;
    g.bars.forEach((b, bi) => {
      if (!Number.isFinite(b.value)) return;
      const x = start + bi * barWidth;
      const by = y(b.value);
      out.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${Math.max(0, plotBottom - by).toFixed(1)}" fill="${color(b.label)}"><title>${escapeXml(`${g.label} ${b.label}: ${b.value} ${p.unit}`)}</title></rect>`,
      );
      if (barWidth >= 16) out.push(text(x + barWidth / 2, by - 3, compact(b.value), `font-size="${barWidth >= 28 ? 9 : 8}" text-anchor="middle" fill="#333"`));
    });
    for (const m of g.markers ?? []) {
      if (!Number.isFinite(m.value) || (log && m.value <= 0)) continue;
      const my = y(m.value);
      const c = m.ok === false ? "#d62728" : m.ok === true ? "#2ca02c" : "#555";
      out.push(`<line x1="${(gx + 4).toFixed(1)}" x2="${(gx + groupWidth - 4).toFixed(1)}" y1="${my.toFixed(1)}" y2="${my.toFixed(1)}" stroke="${c}" stroke-dasharray="5,3" stroke-width="1.5"/>`);
      out.push(text(gx + groupWidth - 6, my - 3, m.label, `font-size="9" text-anchor="end" fill="${c}"`));
    }
    const label = g.label.length > groupWidth / 6.5 ? `${g.label.slice(0, Math.max(4, Math.floor(groupWidth / 6.5) - 1))}…` : g.label;
    out.push(text(gx + groupWidth / 2, plotBottom + 16, label, 'font-size="11" text-anchor="middle"'));
  });
  if (p.groups.length === 0) out.push(text(WIDTH / 2, (plotTop + plotBottom) / 2, "no samples", 'font-size="12" text-anchor="middle" fill="#888"'));
  return { svg: out.join("\n"), height };
}

function linePanel(p: LinePanel, top: number): { svg: string; height: number } {
  const height = 210;
  const plotTop = top + 36;
  const plotBottom = top + height - 40;
  const plotHeight = plotBottom - plotTop;
  const points = p.series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  const maxX = Math.max(1, ...points.map(([x]) => x));
  const ticks = niceTicks(Math.max(0, ...points.map(([, v]) => v)) || 1, 4);
  const topY = ticks[ticks.length - 1]!;
  const x = (v: number) => LEFT + ((WIDTH - LEFT - RIGHT) * v) / maxX;
  const y = (v: number) => plotBottom - (plotHeight * v) / topY;
  const out: string[] = [];
  out.push(text(LEFT, top + 18, p.title, 'font-size="14" font-weight="bold"'));
  out.push(text(LEFT - 8, plotTop - 8, p.unit, 'font-size="10" text-anchor="end" fill="#555"'));
  for (const t of ticks) {
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(text(LEFT - 6, y(t) + 3.5, compact(t), 'font-size="10" text-anchor="end" fill="#555"'));
  }
  for (const t of niceTicks(maxX, 10)) {
    if (t > maxX) continue;
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${plotBottom}" y2="${plotBottom + 4}" stroke="#333"/>`);
    out.push(text(x(t), plotBottom + 15, compact(t), 'font-size="10" text-anchor="middle" fill="#555"'));
  }
  out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${plotBottom}" y2="${plotBottom}" stroke="#333"/>`);
  out.push(text((LEFT + WIDTH - RIGHT) / 2, plotBottom + 30, p.xLabel, 'font-size="10" text-anchor="middle" fill="#555"'));
  out.push(legend(p.series.map((s, i) => ({ label: s.label, color: PALETTE[i % PALETTE.length]! })), top + 18));
  p.series.forEach((s, i) => {
    const pts = s.points.filter(([, v]) => Number.isFinite(v));
    if (pts.length === 0) return;
    const path = pts.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.8" points="${path}"/>`);
    if (pts.length === 1) out.push(`<circle cx="${x(pts[0]![0]).toFixed(1)}" cy="${y(pts[0]![1]).toFixed(1)}" r="2.5" fill="${PALETTE[i % PALETTE.length]}"/>`);
  });
  if (points.length === 0) out.push(text(WIDTH / 2, (plotTop + plotBottom) / 2, "no data", 'font-size="12" text-anchor="middle" fill="#888"'));
  return { svg: out.join("\n"), height };
}

/** Splits a long line at "; " or ", " so that it fits about `max` characters. */
function wrap(line: string, max = 150): string[] {
  const out: string[] = [];
  let rest = line;
  while (rest.length > max) {
    const cut = Math.max(rest.lastIndexOf("; ", max), rest.lastIndexOf(", ", max));
    if (cut <= 0) break;
    out.push(rest.slice(0, cut + 1));
    rest = `    ${rest.slice(cut + 2)}`;
  }
  out.push(rest);
  return out;
}

export function renderChart(doc: ChartDocument): string {
  const parts: string[] = [];
  let top = 0;
  parts.push(text(16, 26, doc.title, 'font-size="17" font-weight="bold"'));
  const subtitle = doc.subtitle.flatMap((s) => wrap(s));
  subtitle.forEach((s, i) => parts.push(text(16, 46 + i * 15, s, 'font-size="11" fill="#444" xml:space="preserve"')));
  top = 52 + subtitle.length * 15;
  for (const p of doc.panels) {
    const r = p.kind === "bars" ? barPanel(p, top) : linePanel(p, top);
    parts.push(r.svg);
    top += r.height;
  }
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${top + 10}" viewBox="0 0 ${WIDTH} ${top + 10}" font-family="Helvetica, Arial, sans-serif">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n${parts.join("\n")}\n</svg>\n`
  );
}

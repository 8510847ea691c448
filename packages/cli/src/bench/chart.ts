/**
 * The `tp bench --chart` picture, as hand-written SVG (no dependency): three panels side by side —
 * decode latency vs batch and throughput vs batch, one line per tp, and memory per rank vs tp.
 * Every line is a `<polyline class="series" data-series="…">` with a `<circle>` per point.
 */

/** The numbers of one (tp, batch) cell the chart draws (a `BenchCell` has them all). */
export interface ChartCell {
  tp: number;
  batch: number;
  /** `encode` (encoders): the latency panel shows `prefill_ms`, the forward of the batch. */
  mode?: 'generate' | 'encode';
  prefill_ms?: number;
  decode_ms_per_token: number | null;
  throughput_tokens_per_s: number;
  weights_bytes: number[];
  kv_cache_bytes: number[];
  device_peak_bytes: number[];
}

export interface ChartOptions {
  /** The line above the panels (model, backend, lengths). */
  title?: string;
}

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  /** The x values to mark; `log2` places them on a log scale (batches), `index` evenly (tp sizes). */
  xTicks: number[];
  xScale: 'log2' | 'index';
  series: Series[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const PANEL_W = 340;
const PANEL_H = 300;
const MARGIN = { left: 62, right: 14, top: 34, bottom: 74 };
const MiB = 2 ** 20;

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A round step for about `count` ticks up to `max`: 1, 2 or 5 × a power of ten. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

const f1 = (v: number) => v.toFixed(1);

function renderPanel(panel: Panel, x0: number, y0: number): string {
  const w = PANEL_W - MARGIN.left - MARGIN.right;
  const h = PANEL_H - MARGIN.top - MARGIN.bottom;
  const left = x0 + MARGIN.left;
  const top = y0 + MARGIN.top;
  const ticks = [...new Set(panel.xTicks)].sort((a, b) => a - b);
  const xOf = (x: number): number => {
    if (ticks.length <= 1) return left + w / 2;
    if (panel.xScale === 'index') return left + (ticks.indexOf(x) / (ticks.length - 1)) * w;
    const lo = Math.log2(ticks[0]!);
    const hi = Math.log2(ticks.at(-1)!);
    return left + ((Math.log2(x) - lo) / (hi - lo)) * w;
  };
  const maxY = Math.max(0, ...panel.series.flatMap((s) => s.points.map(([, y]) => (Number.isFinite(y) ? y : 0))));
  const step = niceStep(maxY);
  const topY = Math.max(step, Math.ceil(maxY / step) * step);
  const yOf = (y: number) => top + h - (Math.max(0, Number.isFinite(y) ? y : 0) / topY) * h;
  const out: string[] = [];
  out.push(`<g class="panel" data-panel="${escapeXml(panel.title)}">`);
  out.push(`<text x="${f1(x0 + PANEL_W / 2)}" y="${f1(y0 + 18)}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);
  for (let v = 0; v <= topY + step / 2; v += step) {
    const y = yOf(v);
    out.push(`<line x1="${f1(left)}" y1="${f1(y)}" x2="${f1(left + w)}" y2="${f1(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${f1(left - 6)}" y="${f1(y + 4)}" text-anchor="end" font-size="11">${formatTick(v)}</text>`);
  }
  let lastLabel = Number.NEGATIVE_INFINITY;
  for (const x of ticks) {
    // A label too close to the previous one is left out (its point is still drawn).
    if (xOf(x) - lastLabel < 24) continue;
    lastLabel = xOf(x);
    out.push(`<text x="${f1(xOf(x))}" y="${f1(top + h + 16)}" text-anchor="middle" font-size="11">${x}</text>`);
  }
  out.push(`<line x1="${f1(left)}" y1="${f1(top + h)}" x2="${f1(left + w)}" y2="${f1(top + h)}" stroke="#444"/>`);
  out.push(`<line x1="${f1(left)}" y1="${f1(top)}" x2="${f1(left)}" y2="${f1(top + h)}" stroke="#444"/>`);
  out.push(`<text x="${f1(left + w / 2)}" y="${f1(top + h + 34)}" text-anchor="middle" font-size="12">${escapeXml(panel.xLabel)}</text>`);
  out.push(`<text transform="translate(${f1(x0 + 14)} ${f1(top + h / 2)}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(panel.yLabel)}</text>`);
  for (const s of panel.series) {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    out.push(`<polyline class="series" data-series="${escapeXml(s.name)}" fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map(([x, y]) => `${f1(xOf(x))},${f1(yOf(y))}`).join(' ')}"/>`);
    for (const [x, y] of pts) out.push(`<circle cx="${f1(xOf(x))}" cy="${f1(yOf(y))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name}: ${formatTick(y)} at ${x}`)}</title></circle>`);
  }
  // Legend under the x label, in one or two rows.
  const perRow = Math.max(1, Math.floor(w / 100));
  panel.series.forEach((s, i) => {
    const lx = left + (i % perRow) * 100;
    const ly = top + h + 52 + Math.floor(i / perRow) * 15;
    out.push(`<line x1="${f1(lx)}" y1="${f1(ly - 4)}" x2="${f1(lx + 16)}" y2="${f1(ly - 4)}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${f1(lx + 20)}" y="${f1(ly)}" font-size="11">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** The chart of a set of cells; each tp is one line in the latency and throughput panels. */
export function renderBenchChart(cells: readonly ChartCell[], options: ChartOptions = {}): string {
  const tps = [...new Set(cells.map((c) => c.tp))].sort((a, b) => a - b);
  const batches = [...new Set(cells.map((c) => c.batch))].sort((a, b) => a - b);
  const color = (i: number) => COLORS[i % COLORS.length]!;
  const perTp = (value: (c: ChartCell) => number): Series[] =>
    tps.map((tp, i) => ({ name: `tp ${tp}`, color: color(i), points: cells.filter((c) => c.tp === tp).map((c) => [c.batch, value(c)] as [number, number]) }));
  // Memory per rank (the largest rank) at each tp's largest measured batch.
  const largest = tps.map((tp) => cells.filter((c) => c.tp === tp).reduce((a, b) => (b.batch > a.batch ? b : a)));
  const maxOf = (v: readonly number[]) => Math.max(0, ...v);
  const memory: Series[] = [
    { name: 'weights', color: color(0), points: largest.map((c) => [c.tp, maxOf(c.weights_bytes) / MiB] as [number, number]) },
    { name: 'KV cache', color: color(1), points: largest.map((c) => [c.tp, maxOf(c.kv_cache_bytes) / MiB] as [number, number]) },
    { name: 'device peak', color: color(2), points: largest.map((c) => [c.tp, maxOf(c.device_peak_bytes) / MiB] as [number, number]) },
  ];
  const largestBatches = [...new Set(largest.map((c) => c.batch))];
  const encode = cells[0]?.mode === 'encode';
  const latency: Panel = encode
    ? { title: 'forward latency vs batch', xLabel: 'batch (sequences)', yLabel: 'ms per forward of the batch (median)', xTicks: batches, xScale: 'log2', series: perTp((c) => c.prefill_ms ?? Number.NaN) }
    : { title: 'decode latency vs batch', xLabel: 'batch (sequences)', yLabel: 'ms per token (median step)', xTicks: batches, xScale: 'log2', series: perTp((c) => c.decode_ms_per_token ?? Number.NaN) };
  const panels: Panel[] = [
    latency,
    { title: 'throughput vs batch', xLabel: 'batch (sequences)', yLabel: encode ? 'tokens encoded/s (whole batch)' : 'generated tokens/s (whole batch)', xTicks: batches, xScale: 'log2', series: perTp((c) => c.throughput_tokens_per_s) },
    {
      title: 'memory per rank vs tp',
      xLabel: `tp (largest rank; KV and peak at batch ${largestBatches.join('/')})`,
      yLabel: 'MiB',
      xTicks: tps,
      xScale: 'index',
      series: memory,
    },
  ];
  const titleH = options.title === undefined ? 0 : 26;
  const width = PANEL_W * panels.length;
  const height = PANEL_H + titleH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  if (options.title !== undefined) parts.push(`<text x="10" y="18" font-size="13">${escapeXml(options.title)}</text>`);
  panels.forEach((p, i) => parts.push(renderPanel(p, i * PANEL_W, titleH)));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

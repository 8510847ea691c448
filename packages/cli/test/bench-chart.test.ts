/** The `--chart` SVG and the machine read-bandwidth probe (behaviour, not speed). */
import { describe, expect, it } from 'vitest';
import { escapeXml, niceStep, renderBenchChart, type ChartCell } from '../src/bench/chart.js';
import { measureReadBandwidth, readLoopWasm } from '../src/bench/read-bandwidth.js';

/** A minimal XML well-formedness check: one root, every tag closed in order, attributes quoted, entities known. */
function checkXml(text: string): { root: string; elements: Array<{ name: string; attributes: Record<string, string> }> } {
  const elements: Array<{ name: string; attributes: Record<string, string> }> = [];
  const stack: string[] = [];
  let root: string | undefined;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(text); m !== null; m = tag.exec(text)) {
    const between = text.slice(last, m.index);
    if (/[<>]/.test(between)) throw new Error(`stray markup before offset ${m.index}: ${between.slice(0, 40)}`);
    for (const e of between.matchAll(/&([^;\s]*);?/g)) if (!/^&(lt|gt|amp|quot|#\d+);$/.test(e[0])) throw new Error(`bad entity ${e[0]}`);
    last = tag.lastIndex;
    const [, closing, name, attrs, selfClosing] = m;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
      continue;
    }
    if (stack.length === 0) {
      if (root !== undefined) throw new Error('two root elements');
      root = name!;
    }
    const attributes: Record<string, string> = {};
    for (const a of attrs!.matchAll(/([\w:-]+)="([^"]*)"/g)) attributes[a[1]!] = a[2]!;
    elements.push({ name: name!, attributes });
    if (!selfClosing) stack.push(name!);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.at(-1)}>`);
  if (text.slice(last).trim() !== '') throw new Error('text after the root element');
  if (root === undefined) throw new Error('no element');
  return { root, elements };
}

const cell = (tp: number, batch: number): ChartCell => ({
  tp,
  batch,
  decode_ms_per_token: 10 + batch / tp,
  throughput_tokens_per_s: (batch * 1000) / (10 + batch / tp),
  weights_bytes: Array.from({ length: tp }, () => (512 / tp) * 2 ** 20),
  kv_cache_bytes: Array.from({ length: tp }, () => batch * 2 ** 20),
  device_peak_bytes: Array.from({ length: tp }, () => (600 / tp + batch) * 2 ** 20),
});

describe('--chart', () => {
  const cells = [1, 2, 4].flatMap((tp) => [1, 4, 16].map((b) => cell(tp, b)));
  const svg = renderBenchChart(cells, { title: 'model <"x"> & co' });

  it('is well-formed SVG with three panels', () => {
    const { root, elements } = checkXml(svg);
    expect(root).toBe('svg');
    expect(elements[0]!.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
    expect(elements.filter((e) => e.name === 'g' && e.attributes.class === 'panel').map((e) => e.attributes['data-panel'])).toEqual(['decode latency vs batch', 'throughput vs batch', 'memory per rank vs tp']);
    expect(svg).toContain('model &lt;&quot;x&quot;&gt; &amp; co');
  });

  it('one line per tp in the latency and throughput panels, one per memory kind vs tp, a point per cell', () => {
    const panels = svg.split('<g class="panel"').slice(1);
    expect(panels).toHaveLength(3);
    for (const panel of panels.slice(0, 2)) {
      const lines = [...panel.matchAll(/<polyline class="series" data-series="([^"]+)"[^>]* points="([^"]+)"/g)];
      expect(lines.map((l) => l[1])).toEqual(['tp 1', 'tp 2', 'tp 4']);
      for (const l of lines) expect(l[2]!.split(' ')).toHaveLength(3); // batches 1, 4, 16
      expect(panel.match(/<circle /g)).toHaveLength(9);
    }
    const memory = [...panels[2]!.matchAll(/<polyline class="series" data-series="([^"]+)"[^>]* points="([^"]+)"/g)];
    expect(memory.map((l) => l[1])).toEqual(['weights', 'KV cache', 'device peak']);
    for (const l of memory) expect(l[2]!.split(' ')).toHaveLength(3); // tp 1, 2, 4
  });

  it('points lie inside their panel, and larger values are higher', () => {
    const latency = svg.split('<g class="panel"')[1]!;
    const tp1 = /data-series="tp 1"[^>]* points="([^"]+)"/.exec(latency)![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    for (const [x, y] of tp1) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(340);
      expect(y).toBeGreaterThan(0);
    }
    // Latency grows with the batch; SVG's y grows downwards.
    expect(tp1[2]![1]).toBeLessThan(tp1[0]![1]);
    expect(tp1[0]![0]).toBeLessThan(tp1[1]![0]);
  });

  it('a single cell still draws', () => {
    expect(() => checkXml(renderBenchChart([cell(1, 1)]))).not.toThrow();
  });

  it('helpers', () => {
    expect(escapeXml(`a<b>&"'`)).toBe('a&lt;b&gt;&amp;&quot;&#39;');
    expect(niceStep(36)).toBe(10);
    expect(niceStep(0.9)).toBe(0.2);
    expect(niceStep(0)).toBe(1);
  });
});

describe('machine read bandwidth', () => {
  it('the WebAssembly loop sums its buffer', () => {
    const bytes = readLoopWasm();
    expect(WebAssembly.validate(bytes)).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 2 });
    const { sum } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } }).exports as { sum: (p: number, end: number) => number };
    new Int32Array(memory.buffer).fill(3);
    // 65536 bytes = 1024 iterations of four 16-byte loads; lane 0 of the four accumulators: 4 × 1024 × 3.
    expect(sum(0, 65536)).toBe(12288);
    expect(sum(64, 128)).toBe(12);
  });

  it('measures a positive number on every thread, with the WebAssembly loop and the typed-array one', async () => {
    for (const typedArray of [false, true]) {
      const r = await measureReadBandwidth({ threads: 2, bytesPerThread: 4 * 2 ** 20, durationMs: 20, typedArray });
      expect(r.threads).toBe(2);
      expect(r.bytes_per_thread).toBe(4 * 2 ** 20);
      expect(r.method).toBe(typedArray ? 'typed-array' : 'wasm-simd');
      expect(r.gb_per_s).toBeGreaterThan(0);
      expect(r.seconds).toBeGreaterThan(0);
    }
  });
});

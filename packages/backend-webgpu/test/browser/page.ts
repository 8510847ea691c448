/**
 * The page of the headless-Chromium test: the backend conformance suite's single-rank cases on this
 * browser's adapter, then two Web Workers — each requesting its own adapter and device — doing every
 * collective through SharedArrayBuffer. Results go to `window.tpResults` for the test to read.
 */
import { ALL_REDUCES, allGatherInput, allReduceInput, broadcastInput } from '../../../core/src/testing/collective-data.js';
import { conformanceCases } from '../../../core/src/testing/conformance.js';
import { browserBackend, browserCommunicator } from '../../src/browser.js';
import { summarizeAdapter } from '../../src/device.js';

interface Outcome {
  name: string;
  ok: boolean;
  message?: string;
}

declare global {
  interface Window {
    tpResults?: { adapter: unknown; crossOriginIsolated: boolean; outcomes: Outcome[]; done: boolean; error?: string };
  }
}

async function collectives(outcomes: Outcome[]): Promise<void> {
  const world = 2;
  const communicator = browserCommunicator(world, 20_000);
  const results = await Promise.all(
    Array.from({ length: world }, (_, rank) => {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
      return new Promise<Record<string, { shape: number[]; values: number[] }> | string>((resolve) => {
        worker.onmessage = (e) => {
          resolve(e.data);
          worker.terminate();
        };
        worker.onerror = (e) => resolve(`worker error: ${e.message}`);
        worker.postMessage({ rank, world, communicator });
      });
    }),
  );
  const expected: Record<string, number[]> = {};
  for (const name of ALL_REDUCES) {
    const inputs = [0, 1].map((r) => allReduceInput(name, r).values);
    expected[name] = Array.from(inputs[0]!, (_, i) => inputs[0]![i]! + inputs[1]![i]!);
  }
  expected['allGather 1-D'] = [0, 1].flatMap((r) => Array.from(allGatherInput(false, r).values));
  const twoD = [0, 1].map((r) => allGatherInput(true, r));
  expected['allGather 2-D'] = [0, 1].flatMap((row) => twoD.flatMap((x) => Array.from(x.values.subarray(row * x.shape[1]!, (row + 1) * x.shape[1]!))));
  for (let root = 0; root < world; root++) expected[`broadcast root ${root}`] = Array.from(broadcastInput(root, root).values);
  results.forEach((result, rank) => {
    if (typeof result === 'string') {
      outcomes.push({ name: `collectives, rank ${rank} of 2 Web Workers`, ok: false, message: result });
      return;
    }
    for (const [name, values] of Object.entries(expected)) {
      const got = result[name]?.values ?? [];
      const bad = values.findIndex((v, i) => got[i] !== v);
      const ok = got.length === values.length && bad < 0;
      outcomes.push({ name: `${name}, rank ${rank} of 2 Web Workers`, ok, ...(ok ? {} : { message: `${got.length} values, first difference at ${bad}: got ${got[bad]}, expected ${values[bad]}` }) });
    }
  });
}

async function main(): Promise<void> {
  const state: NonNullable<Window['tpResults']> = { adapter: undefined, crossOriginIsolated, outcomes: [], done: false };
  window.tpResults = state;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    state.adapter = adapter ? summarizeAdapter(adapter) : null;
    if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
    // Every single-rank case: kernels, uploads, dtypes, attention, KV caches, routing.
    for (const c of conformanceCases(browserBackend, { worlds: [] })) {
      try {
        await c.run();
        state.outcomes.push({ name: c.name, ok: true });
      } catch (error) {
        state.outcomes.push({ name: c.name, ok: false, message: (error as Error)?.message ?? String(error) });
      }
    }
    await collectives(state.outcomes);
  } catch (error) {
    state.error = (error as Error)?.stack ?? String(error);
  }
  state.done = true;
}

void main();

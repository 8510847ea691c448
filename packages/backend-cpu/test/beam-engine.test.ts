/**
 * StepInput.order on the engines directly (one CPU rank on this thread): a step that reorders the
 * batch — across sources, for an encoder–decoder, so the cross-attention caches and source mask must
 * follow — gives the logits of a batch that was in that order all along; and an encoder input with
 * `repeat` gives each source's output to its beams.
 */
import { expect, test } from 'vitest';
import { analyzeModel, createConfigReader, loadShard, openCheckpoint, planTensorParallel, Seq2SeqEngine, DecoderEngine, type Engine, type StepInput } from '@tp/core';
import { relativeError, sourceBackend } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();

async function engineFor(dir: string): Promise<{ engine: Engine; dispose: () => Promise<void> }> {
  const ckpt = await openCheckpoint(dir);
  const graph = analyzeModel(ckpt);
  const plan = planTensorParallel(graph, { tpSize: 1, vocabParallel: false, computeDtype: 'F32', supportedStorage: sourceBackend.storageDtypes, supportedKv: sourceBackend.kvDtypes });
  const rank = await sourceBackend.createRank({ rank: 0, world: 1, communicator: sourceBackend.createCommunicator(1, { timeoutMs: 5000 }), options: {} });
  const shard = loadShard(ckpt, plan, rank, () => {});
  const config = createConfigReader(ckpt.config);
  ckpt.close();
  const engine = graph.kind === 'seq2seq' ? new Seq2SeqEngine(rank, graph, plan, shard, graph.descriptor.seq2seq!(config)) : new DecoderEngine(rank, graph, plan, shard, graph.descriptor.decoder!(config));
  return { engine, dispose: () => rank.dispose() };
}

const ones = (n: number) => new Int32Array(n).fill(1);

/** A decode row per sequence at slot `start` (positions `position`). */
function row(ids: number[], start: number, position: number, order?: number[]): StepInput {
  const positions = new Int32Array(ids.length).fill(position);
  return { ids: Int32Array.from(ids), positions, batch: ids.length, rows: 1, start, keyMask: ones(ids.length), keyPositions: positions, logits: 'last', ...(order ? { order: Int32Array.from(order) } : {}) };
}

/** Right-padded encoder rows of `sources`. */
function encoderInput(sources: number[][], repeat?: number): NonNullable<StepInput['encoder']> {
  const rows = Math.max(...sources.map((s) => s.length));
  const ids = new Int32Array(sources.length * rows);
  const keyMask = new Int32Array(sources.length * rows);
  const positions = new Int32Array(sources.length * rows);
  sources.forEach((s, b) => s.forEach((t, i) => ((ids[b * rows + i] = t), (keyMask[b * rows + i] = 1), (positions[b * rows + i] = i))));
  return { ids, positions, keyMask, rows, ...(repeat ? { repeat } : {}) };
}

test('encoder–decoder: reordering across sources == the batch in that order all along; repeat == the sources listed per beam', async () => {
  const { dir } = await tiny('bart-order', { family: 'bart', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 6 });
  const { engine, dispose } = await engineFor(dir);
  try {
    const s0 = [5, 60, 61, 62, 9, 1, 17];
    const s1 = [70, 71, 72];
    const first = (sources: number[][], repeat?: number): StepInput => ({ ...row(new Array<number>(sources.length * (repeat ?? 1)).fill(2), 0, 0), encoder: encoderInput(sources, repeat) });
    // A: sources (s0, s1), decode x / y, then swap: sequence 0 continues s1's, sequence 1 s0's.
    engine.reset(2);
    await engine.forward(first([s0, s1]));
    await engine.forward(row([30, 40], 1, 1));
    const a = (await engine.forward(row([50, 60], 2, 2, [1, 0])))!.logits!;
    // B: sources (s1, s0) from the start, decode y / x, then the same tokens.
    engine.reset(2);
    await engine.forward(first([s1, s0]));
    await engine.forward(row([40, 30], 1, 1));
    const b = (await engine.forward(row([50, 60], 2, 2)))!.logits!;
    expect(relativeError(a, b)).toBeLessThan(1e-5);

    // repeat 2: (s0, s1) each serving two beams == the four sources listed (s0, s0, s1, s1).
    engine.reset(4);
    const r = (await engine.forward(first([s0, s1], 2)))!.logits!;
    const r2 = (await engine.forward(row([30, 31, 40, 41], 1, 1, [1, 0, 3, 2])))!.logits!;
    engine.reset(4);
    const l = (await engine.forward(first([s0, s0, s1, s1])))!.logits!;
    const l2 = (await engine.forward(row([30, 31, 40, 41], 1, 1)))!.logits!;
    expect(relativeError(r, l)).toBeLessThan(1e-5);
    expect(relativeError(r2, l2)).toBeLessThan(1e-5);
  } finally {
    await dispose();
  }
});

test('decoder: a reordered batch (a sequence continued twice, one dropped) == the batch built that way', async () => {
  const { dir } = await tiny('llama-order', { family: 'llama', vocab: 320, seed: 11 });
  const { engine, dispose } = await engineFor(dir);
  try {
    const prompt = (seqs: number[][]): StepInput => {
      const rows = seqs[0]!.length;
      const positions = Int32Array.from({ length: seqs.length * rows }, (_, i) => i % rows);
      return { ids: Int32Array.from(seqs.flat()), positions, batch: seqs.length, rows, start: 0, keyMask: ones(seqs.length * rows), keyPositions: positions, logits: 'last' };
    };
    engine.reset(3);
    await engine.forward(prompt([[1, 2, 3], [4, 5, 6], [7, 8, 9]]));
    const a = (await engine.forward(row([10, 11, 12], 3, 3, [2, 2, 0])))!.logits!;
    engine.reset(3);
    await engine.forward(prompt([[7, 8, 9], [7, 8, 9], [1, 2, 3]]));
    const b = (await engine.forward(row([10, 11, 12], 3, 3)))!.logits!;
    expect(relativeError(a, b)).toBeLessThan(1e-5);
  } finally {
    await dispose();
  }
});

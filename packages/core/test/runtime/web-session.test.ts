/**
 * openWebModel, the page's side of a model in Web Workers, in Node: golden folders served over HTTP
 * (Range requests), and scripted rank workers that answer the rank messages as hostRank does — a
 * rank's "model" maps token t to the next token t + 1 (its logits peak there), and gives hidden rows
 * made from the input ids. What is tested is the page: the plan and what each worker is sent, the
 * logits per sequence, generate's loop (greedy, sampling, end of sequence, onToken, signal,
 * returnLogits), encoders (BERT, Splinter) and encoder–decoders (T5, BART) — the steps sent compared
 * with the batch helpers Node's session builds them with, and the kind's errors — the tokenizer, a
 * failing rank, dispose, and the refusals. The real ranks (WebGPU in headless Chromium) are
 * packages/backend-webgpu/test/browser.test.ts; serveWebRank's glue is checked here with a fake scope.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, createConfigReader, openCheckpoint, planTensorParallel, RankFailedError, TpError, type Backend, type StepInput, type StepResult, type TPPlan } from '../../src/index.js';
import { decoderBatch, encoderBatch } from '../../src/browser.js';
import type { FromWorker, ToWorker } from '../../src/runtime/messages.js';
import { openWebModel, serveWebRank, type RankWorker, type WebModelOptions, type WebRankInit } from '../../src/runtime/web-session.js';
import { expectTpError, put, putJson, useTempDirs } from '../helpers/files.js';
import { serveFolder, type FolderServer } from '../helpers/http.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

const LLAMA = path.join(GOLDEN_DIR, 'llama');
const VOCAB = 256; // the golden Llama's vocab_size
const EOS = 2; // its generation_config.json's eos_token_id

/** Planning needs these of a backend; the ranks are the scripted workers. */
const backend = {
  interfaceVersion: 4,
  name: 'scripted',
  moduleUrl: 'about:blank',
  storageDtypes: ['f32', 'f16', 'bf16'],
  kvDtypes: ['f32'],
  probe: async () => ({}),
  rankMemoryLimit: async () => undefined,
  createCommunicator: (world: number, options: { timeoutMs: number }) => ({ kind: 'scripted', world, timeoutMs: options.timeoutMs }),
  abortCommunicator: () => undefined,
  createRank: async () => {
    throw new Error('scripted ranks make no device');
  },
} as unknown as Backend;

interface Script {
  /** Fail this rank with this error when it gets a forward (after `afterForwards` of them). */
  fault?: { rank: number; afterForwards: number; error: { message: string; code?: string; fields?: Record<string, unknown> } };
  /** Fail this rank while loading. */
  loadError?: { rank: number; message: string };
  /** Milliseconds each forward takes. */
  forwardMs?: number;
  /** This rank never answers (its script is stuck). */
  mute?: number;
}

/** What every scripted worker did, in order, across ranks. */
type Log = string[];

/** The logits of a row whose last token is `t`: 100 at t + 1, 0 elsewhere. */
function rowFor(t: number, into: Float32Array, at: number): void {
  into[at + ((t + 1) % VOCAB)] = 100;
}

/** A Web Worker that answers as rank `rank` of hostRank would, with the t → t + 1 model. */
class ScriptedWorker implements RankWorker {
  readonly received: Array<WebRankInit | ToWorker> = [];
  terminated = false;
  private readonly listeners = new Map<string, Array<(event: unknown) => void>>();
  private forwards = 0;
  private stopped = false;

  constructor(
    readonly rank: number,
    private readonly script: Script,
    private readonly log: Log,
  ) {}

  addEventListener(type: string, listener: (event: any) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  emit(type: string, event: unknown): void {
    if (this.terminated) return;
    for (const l of this.listeners.get(type) ?? []) l(event);
  }

  terminate(): void {
    this.log.push(`terminate ${this.rank}`);
    this.terminated = true;
  }

  postMessage(message: unknown): void {
    const m = message as WebRankInit | ToWorker;
    this.received.push(m);
    setTimeout(() => void this.answer(m), m.type === 'forward' ? (this.script.forwardMs ?? 0) : 0);
  }

  private post(m: FromWorker): void {
    this.emit('message', { data: structuredClone(m) });
  }

  private async answer(m: WebRankInit | ToWorker): Promise<void> {
    if (this.terminated || this.stopped || this.script.mute === this.rank) return;
    const me = this.rank;
    if (m.type === 'tp-web-rank') {
      if (this.script.loadError?.rank === me) {
        this.post({ type: 'error', id: null, rank: me, error: { message: this.script.loadError.message } });
        return;
      }
      const share = m.plan.ranks[me]!.bytesToRead;
      this.post({ type: 'progress', rank: me, bytesRead: share, bytesTotal: share });
      this.post({ type: 'ready', rank: me, bytesRead: share, loadMs: 3 + me });
      return;
    }
    if (m.type === 'forward') {
      const fault = this.script.fault;
      if (fault?.rank === me && this.forwards >= fault.afterForwards) {
        this.stopped = true;
        this.post({ type: 'error', id: m.id, rank: me, error: fault.error });
        return;
      }
      this.forwards++;
      this.log.push(`forward ${me}`);
      this.post({ type: 'done', id: m.id, rank: me, ...(me === 0 ? { result: step(m.step) } : {}) });
      return;
    }
    if (m.type === 'dispose') this.log.push(`dispose ${me}`);
    this.post({ type: 'done', id: m.id, rank: me });
  }
}

/** Width of the scripted hidden states: hidden row r of a token t is [t, t + 0.5, t + 0.25]. */
const HIDDEN = 3;

/** The hidden rows the scripted model gives for `ids` (an encoder's input, an encoder–decoder's source). */
function hiddenFor(ids: Int32Array): Float32Array {
  return Float32Array.from([...ids].flatMap((t) => [t, t + 0.5, t + 0.25]));
}

/** Rank 0's answer to a step, as the t → t + 1 model gives it. */
function step(s: StepInput): StepResult {
  // Hidden states when asked: the encoder's rows (an encoder–decoder's source), one per input row.
  const hidden = s.hidden === true ? { hidden: hiddenFor(s.encoder?.ids ?? s.ids) } : {};
  if (s.logits === 'none') return hidden;
  const rows = s.logits === 'all' ? s.rows : 1;
  const last = (b: number, r: number) => s.ids[b * s.rows + (s.logits === 'all' ? r : s.rows - 1)]!;
  if (s.output === 'argmax') return { ids: Int32Array.from({ length: s.batch }, (_, b) => (last(b, 0) + 1) % VOCAB) };
  if (typeof s.output === 'object') {
    const k = s.output.topk;
    const indices = new Int32Array(s.batch * k);
    const values = new Float32Array(s.batch * k);
    for (let b = 0; b < s.batch; b++) {
      const best = (last(b, 0) + 1) % VOCAB;
      // The best first, then the lowest ids (all 0), skipping the best.
      const order = [best, ...Array.from({ length: VOCAB }, (_, i) => i).filter((i) => i !== best)].slice(0, k);
      order.forEach((id, j) => ((indices[b * k + j] = id), (values[b * k + j] = id === best ? 100 : 0)));
    }
    return { topk: { values, indices } };
  }
  const logits = new Float32Array(s.batch * rows * VOCAB);
  for (let b = 0; b < s.batch; b++) for (let r = 0; r < rows; r++) rowFor(last(b, r), logits, (b * rows + r) * VOCAB);
  return { logits, ...hidden };
}

let server: FolderServer | undefined;
let plan: TPPlan;
const temp = useTempDirs();
beforeAll(async () => {
  if (!hasShared) return;
  server = await serveFolder(LLAMA);
  const ckpt = await openCheckpoint(LLAMA);
  plan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2, computeDtype: 'F32', storageDtype: 'auto', kvDtype: 'f32', supportedStorage: backend.storageDtypes, supportedKv: backend.kvDtypes });
  ckpt.close();
});
afterAll(() => server?.close());

/** A safetensors file holding one f32 [1] tensor named `name`. */
function oneTensorFile(name: string): Buffer {
  let header = JSON.stringify({ [name]: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, Buffer.from(header), Buffer.alloc(4)]);
}

/** openWebModel on `url` with two scripted workers; the workers and the log come back too. */
async function open(script: Script = {}, options: Partial<WebModelOptions> = {}, url = server!.url('')) {
  const log: Log = [];
  const workers: ScriptedWorker[] = [];
  const opened = openWebModel({
    url,
    tpSize: 2,
    backend,
    startWorker: (rank) => {
      const w = new ScriptedWorker(rank, script, log);
      workers.push(w);
      return w;
    },
    ...options,
  });
  return { opened, workers, log };
}

/** The steps a scripted worker was sent, in order. */
function forwards(w: ScriptedWorker): StepInput[] {
  return w.received.flatMap((m) => (m.type === 'forward' ? [m.step] : []));
}

/** A golden folder served over HTTP while `fn` runs. */
async function withGolden(family: string, fn: (url: string) => Promise<void>): Promise<void> {
  const folder = await serveFolder(path.join(GOLDEN_DIR, family));
  try {
    await fn(folder.url(''));
  } finally {
    await folder.close();
  }
}

/** A golden's graph, config and TP=2 plan, as Node's session makes them from the folder. */
async function goldenGraph(family: string) {
  const ckpt = await openCheckpoint(path.join(GOLDEN_DIR, family));
  const graph = analyzeModel(ckpt);
  const config = createConfigReader(ckpt.config);
  ckpt.close();
  const plan = planTensorParallel(graph, { tpSize: 2, computeDtype: 'F32', storageDtype: 'auto', kvDtype: 'f32', supportedStorage: backend.storageDtypes, supportedKv: backend.kvDtypes });
  return { graph, config, plan };
}

describe(`openWebModel${needsShared}`, () => {
  it.skipIf(!hasShared)('plans from the headers it fetched as Node plans from the folder, and sends each worker its rank, the files and their sizes', async () => {
    const progress: number[] = [];
    const { opened, workers } = await open({}, { onProgress: (e) => progress.push(e.rank) });
    const model = await opened;
    expect(model.plan).toEqual(plan);
    expect(model.url).toBe(server!.url(''));
    expect(model.ranks).toEqual([0, 1].map((rank) => ({ rank, bytesRead: plan.ranks[rank]!.bytesToRead, loadMs: 3 + rank })));
    expect(progress.sort()).toEqual([0, 1]);
    expect(model.generation.eosTokenIds).toEqual([EOS]);
    expect(model.tokenizer).toBeUndefined();
    workers.forEach((w, rank) => {
      const init = w.received[0] as WebRankInit;
      expect(init).toMatchObject({ type: 'tp-web-rank', rank, world: 2, kvDtype: 'f32', config: server!.url('config.json'), communicator: { world: 2, timeoutMs: 60_000 } });
      expect(init.files).toEqual([{ url: server!.url('model.safetensors'), size: 429408 }]);
    });
    // The page read no weight byte: the config, the header, generation_config.json; the index, tokenizer.json 404.
    expect(server!.requests.filter((r) => r.method === 'GET' && r.path === '/model.safetensors').every((r) => r.range !== undefined && Number(/-(\d+)$/.exec(r.range)![1]) < 4096)).toBe(true);
    await model.dispose();
  });

  it.skipIf(!hasShared)('logits: every position of each sequence, the left padding of a shorter one dropped', async () => {
    const { opened, workers } = await open();
    const model = await opened;
    const sequences = [[5, 9, 30, 31], [7, 8]];
    const logits = await model.logits(sequences);
    expect(logits.map((l) => l.length)).toEqual([4 * VOCAB, 2 * VOCAB]);
    sequences.forEach((seq, b) => seq.forEach((t, i) => expect(logits[b]![i * VOCAB + t + 1], `sequence ${b} position ${i}`).toBe(100)));
    expect(workers.map((w) => w.received.find((m) => m.type === 'reset'))).toEqual([0, 1].map(() => expect.objectContaining({ type: 'reset', batch: 2 })));
    await expectTpError(() => model.logits([[VOCAB]]), { code: 'invalid-argument' });
    await model.dispose();
  });

  it.skipIf(!hasShared)("generate: greedy to the config's end of sequence, onToken for each token, the logits when asked, and the length limit", async () => {
    const { opened } = await open();
    const model = await opened;
    const seen: string[] = [];
    const [toEos, long] = await model.generate([[0], [40]], { maxNewTokens: 4, returnLogits: true, onToken: (e) => seen.push(`${e.sequence}:${e.step}:${e.token}`) });
    expect(toEos).toMatchObject({ promptTokens: [0], tokens: [1, 2], finishReason: 'eos', text: undefined });
    expect(long).toMatchObject({ promptTokens: [40], tokens: [41, 42, 43, 44], finishReason: 'length' });
    expect(long!.stepLogits!.map((row) => row.indexOf(100))).toEqual([41, 42, 43, 44]);
    expect(seen).toEqual(['0:0:1', '1:0:41', '0:1:2', '1:1:42', '1:2:43', '1:3:44']);
    const [noStop] = await model.generate([[0]], { maxNewTokens: 3, stopAtEos: false });
    expect(noStop).toMatchObject({ tokens: [1, 2, 3], finishReason: 'length' });
    // Sampling from the logits and from top-k candidates (the model's peak is certain), and beams.
    const [sampled] = await model.generate([[10]], { maxNewTokens: 3, temperature: 0.8, topP: 0.9, seed: 3 });
    expect(sampled!.tokens).toEqual([11, 12, 13]);
    const [topk] = await model.generate([[10]], { maxNewTokens: 2, temperature: 1, topK: 5 });
    expect(topk!.tokens).toEqual([11, 12]);
    const [beams] = await model.generate([[10]], { maxNewTokens: 2, numBeams: 2 });
    expect(beams!.tokens).toEqual([11, 12]);
    await expectTpError(() => model.generate([[1]], { maxNewTokens: 128 }), { code: 'invalid-argument' });
    await expectTpError(() => model.generate(['text'], { maxNewTokens: 1 }), { code: 'invalid-argument' });
    expect(() => model.encode('text')).toThrow(/has no tokenizer\.json/);
    await model.dispose();
  });

  it.skipIf(!hasShared)('generate: an aborted signal stops at the next step boundary', async () => {
    const { opened } = await open();
    const model = await opened;
    const stop = new AbortController();
    const [out] = await model.generate([[10]], { maxNewTokens: 5, onToken: (e) => e.step === 1 && stop.abort(), signal: stop.signal });
    expect(out).toMatchObject({ tokens: [11, 12], finishReason: 'aborted' });
    await model.dispose();
  });

  it.skipIf(!hasShared)("a failing rank fails logits and generate with that rank's error, stops every worker, and ends the model", async () => {
    const { opened, workers } = await open({ fault: { rank: 1, afterForwards: 1, error: { message: 'device lost', code: 'out-of-memory', fields: { op: 'matmul' } } } });
    const model = await opened;
    await model.logits([[1, 2]]);
    const error = await expectTpError(() => model.generate([[1, 2]], { maxNewTokens: 2 }), { code: 'out-of-memory', name: 'RankError' });
    expect(error.message).toBe('rank 1: device lost');
    expect(error['rank']).toBe(1);
    expect(workers.every((w) => w.terminated)).toBe(true);
    expect(model.failed).toBe(error);
    await expect(model.logits([[1]])).rejects.toBe(error);
    // Dispose after a failure only terminates (no rank is waited for).
    await model.dispose();
    expect(workers.every((w) => !w.received.some((m) => m.type === 'dispose'))).toBe(true);
  });

  it.skipIf(!hasShared)("an error without a code is the rank's rank-failed error", async () => {
    const { opened } = await open({ fault: { rank: 0, afterForwards: 0, error: { message: 'boom' } } });
    const model = await opened;
    const error = await model.logits([[3]]).catch((e: Error) => e);
    expect(error).toBeInstanceOf(RankFailedError);
    expect(error).toMatchObject({ code: 'rank-failed', rank: 0, message: 'rank 0: boom' });
  });

  it.skipIf(!hasShared)("a rank that fails while loading rejects openWebModel with its error, every worker terminated", async () => {
    const { opened, workers } = await open({ loadError: { rank: 1, message: 'no WebGPU adapter' } });
    const error = await opened.catch((e: Error) => e);
    expect(error).toBeInstanceOf(RankFailedError);
    expect((error as Error).message).toBe('rank 1: no WebGPU adapter');
    expect(workers.map((w) => w.terminated)).toEqual([true, true]);
  });

  it.skipIf(!hasShared)("a worker whose script fails (its error event) rejects openWebModel naming the rank", async () => {
    const { opened, workers } = await open({ mute: 0 });
    // Rank 0's script "throws" before it answers.
    await expect.poll(() => workers.length).toBe(2);
    workers[0]!.emit('error', { message: 'Uncaught SyntaxError: bad worker module' });
    const error = await opened.catch((e: Error) => e);
    expect((error as Error).message).toBe('rank 0: the worker failed: Uncaught SyntaxError: bad worker module');
    expect(workers.every((w) => w.terminated)).toBe(true);
  });

  it.skipIf(!hasShared)('dispose lets the step in flight finish, sends every rank dispose, waits for each, then terminates the workers', async () => {
    const { opened, workers, log } = await open({ forwardMs: 30 });
    const model = await opened;
    const started: number[] = [];
    const generating = model.generate([[10]], { maxNewTokens: 5, onToken: (e) => started.push(e.step) });
    // Dispose while the first step is on the ranks.
    await new Promise((resolve) => setTimeout(resolve, 10));
    const disposing = model.dispose();
    expect(model.dispose()).toBe(disposing);
    await disposing;
    await expect(generating).rejects.toThrow(/disposed/);
    // The prefill finished on both ranks before any dispose, and both disposed before any terminate.
    expect(log).toEqual(['forward 0', 'forward 1', 'dispose 0', 'dispose 1', 'terminate 0', 'terminate 1']);
    expect(started).toEqual([0]);
    expect(workers.every((w) => w.terminated)).toBe(true);
    await expect(model.logits([[1]])).rejects.toThrow(/disposed/);
  });

  it.skipIf(!hasShared)('opens an encoder (BERT): encoderOutputs and logits send each rank the step Node sends, and each output is cut to its input', async () => {
    await withGolden('bert', async (url) => {
      const { opened, workers } = await open({}, {}, url);
      const model = await opened;
      const { graph, config, plan: bertPlan } = await goldenGraph('bert');
      expect(model.graph.kind).toBe('encoder');
      expect(model.plan).toEqual(bertPlan);
      const inputs = [{ tokens: [5, 9, 30, 31], tokenTypes: [0, 0, 1, 1] }, [7, 8]];
      const [long, short] = await model.encoderOutputs(inputs);
      // As session.ts: right-padded, the padding masked, the token types checked against type_vocab_size (2).
      const batch = encoderBatch([{ tokens: [5, 9, 30, 31], tokenTypes: [0, 0, 1, 1] }, { tokens: [7, 8] }], graph.descriptor.encoder!(config), 2);
      for (const w of workers) expect(forwards(w)).toEqual([{ ...batch, logits: 'all', output: 'logits', hidden: true, pooled: false }]);
      expect(long).toEqual({ tokens: [5, 9, 30, 31], hidden: hiddenFor(Int32Array.of(5, 9, 30, 31)), logits: expect.any(Float32Array) });
      // The shorter input's padding rows are dropped.
      expect(short!.hidden).toEqual(hiddenFor(Int32Array.of(7, 8)));
      expect(short!.logits!.length).toBe(2 * VOCAB);
      [7, 8].forEach((t, i) => expect(short!.logits![i * VOCAB + t + 1]).toBe(100));
      // logits(): the masked-LM logits alone.
      const [logits] = await model.logits([[3, 4, 5]]);
      expect([0, 1, 2].map((i) => logits!.subarray(i * VOCAB, (i + 1) * VOCAB).indexOf(100))).toEqual([4, 5, 6]);
      expect(forwards(workers[0]!).at(-1)).toMatchObject({ logits: 'all', hidden: false, pooled: false, rows: 3 });
      const sent = forwards(workers[0]!).length;
      // The kind's refusals and bad inputs, as Node's session gives them, before any rank hears of them.
      const tokenTypes = await expectTpError(() => model.encoderOutputs([{ tokens: [5, 6, 7], tokenTypes: [0, 1] }]), { code: 'invalid-argument', name: 'ArgumentError' });
      expect(tokenTypes.message).toContain('input 0 has 3 tokens but 2 token types');
      const segment = await expectTpError(() => model.encoderOutputs([{ tokens: [5, 6], tokenTypes: [0, 2] }]), { code: 'invalid-argument' });
      expect(segment.message).toContain("token type 2 is outside the model's 2 segment types (0 to 1)");
      const tooLong = await expectTpError(() => model.encoderOutputs([Array.from({ length: 129 }, (_, i) => 3 + (i % 200))]), { code: 'invalid-argument' });
      expect(tooLong.message).toContain("the input has 129 tokens, but this model's position table has 128 positions");
      const pooled = await expectTpError(() => model.encoderOutputs([[5, 6]], { pooled: true }), { code: 'invalid-argument' });
      expect(pooled.message).toContain(`(${url}) has no pooler (pooler.dense)`);
      const generate = await expectTpError(() => model.generate([[5, 6]]), { code: 'invalid-argument' });
      expect(generate.message).toContain('generate() does not fit');
      expect(generate.message).toContain('an encoder; it has encoderOutputs()');
      await expectTpError(() => model.seq2seqLogits([[5, 6]]), { code: 'invalid-argument' });
      await expectTpError(() => model.encoderOutputs([[VOCAB]]), { code: 'invalid-argument' });
      expect(() => model.encode('text')).toThrow(/has no tokenizer\.json/);
      expect(forwards(workers[0]!)).toHaveLength(sent);
      await model.dispose();
    });
  });

  it.skipIf(!hasShared)('an encoder without a masked-LM head (Splinter): hidden states only, and logits refused as in Node', async () => {
    await withGolden('splinter', async (url) => {
      const { opened, workers } = await open({}, {}, url);
      const model = await opened;
      const [out] = await model.encoderOutputs([[5, 6, 7]]);
      expect(out).toEqual({ tokens: [5, 6, 7], hidden: hiddenFor(Int32Array.of(5, 6, 7)) });
      expect(forwards(workers[1]!)).toEqual([expect.objectContaining({ logits: 'none', hidden: true })]);
      const error = await expectTpError(() => model.logits([[5, 6]]), { code: 'invalid-argument', name: 'ArgumentError' });
      expect(error['argument']).toBe('logits');
      expect(error.message).toContain(`(${url}) has no masked-LM head; ask for the hidden states only`);
      expect(forwards(workers[1]!)).toHaveLength(1);
      await model.dispose();
    });
  });

  it.skipIf(!hasShared)('opens an encoder–decoder (T5): seq2seqLogits, logits and encoderOutputs send the source and decoder rows Node sends', async () => {
    await withGolden('t5', async (url) => {
      const { opened, workers } = await open({}, {}, url);
      const model = await opened;
      const { graph, config, plan: t5Plan } = await goldenGraph('t5');
      expect(model.plan).toEqual(t5Plan);
      const spec = graph.descriptor.seq2seq!(config);
      const sources = [[5, 9, 30], [7, 8]];
      const decoderTokens = [[0, 4, 6], [0, 3]];
      const out = await model.seq2seqLogits(sources, { decoderTokens, hidden: true });
      const source = encoderBatch(sources.map((tokens) => ({ tokens })), spec.encoder);
      const expected = { ...decoderBatch(decoderTokens, spec.decoder.padTokenId ?? 0), encoder: { ids: source.ids, positions: source.positions, keyMask: source.keyMask, rows: source.rows }, logits: 'all', output: 'logits', hidden: true };
      for (const w of workers) {
        expect(w.received.filter((m) => m.type === 'reset' || m.type === 'forward').map((m) => m.type)).toEqual(['reset', 'forward']);
        expect(w.received.find((m) => m.type === 'reset')).toMatchObject({ batch: 2 });
        expect(forwards(w)).toEqual([expected]);
      }
      expect(out.map((o) => o.decoderTokens)).toEqual(decoderTokens);
      expect(out.map((o) => o.hidden)).toEqual([hiddenFor(Int32Array.of(5, 9, 30)), hiddenFor(Int32Array.of(7, 8))]);
      expect(out[1]!.logits.length).toBe(2 * VOCAB);
      [0, 3].forEach((t, i) => expect(out[1]!.logits[i * VOCAB + t + 1]).toBe(100));
      // logits(): from the decoder start token (generation_config.json's 0) alone; encoderOutputs: the encoder states.
      const [logits] = await model.logits([[5, 9]]);
      expect(logits!.indexOf(100)).toBe(1);
      expect(forwards(workers[0]!).at(-1)).toMatchObject({ ids: Int32Array.of(0), rows: 1, hidden: false, encoder: { ids: Int32Array.of(5, 9) } });
      const [encoded] = await model.encoderOutputs([[5, 9, 30]]);
      expect(encoded).toEqual({ tokens: [5, 9, 30], hidden: hiddenFor(Int32Array.of(5, 9, 30)) });
      const sent = forwards(workers[0]!).length;
      // The kind's refusals, as Node's session gives them.
      const types = await expectTpError(() => model.encoderOutputs([{ tokens: [5, 6], tokenTypes: [0, 0] }]), { code: 'invalid-argument' });
      expect(types.message).toContain('has no token types');
      const head = await expectTpError(() => model.encoderOutputs([[5, 6]], { logits: true }), { code: 'invalid-argument' });
      expect(head.message).toContain("encoder has no masked-LM head; logits() gives the decoder's");
      const count = await expectTpError(() => model.seq2seqLogits([[5], [6]], { decoderTokens: [[0]] }), { code: 'invalid-argument' });
      expect(count.message).toContain('1 decoder inputs for 2 sequences');
      await expectTpError(() => model.seq2seqLogits([[5]], { decoderTokens: [[VOCAB]] }), { code: 'invalid-argument' });
      expect(forwards(workers[0]!)).toHaveLength(sent);
      await model.dispose();
    });
  });

  it.skipIf(!hasShared)('generate on an encoder–decoder (T5): the source encoded once, then one decoder row a step; beams repeat the encoder output', async () => {
    await withGolden('t5', async (url) => {
      const { opened, workers } = await open({}, {}, url);
      const model = await opened;
      const [out] = await model.generate([[5, 9, 30]], { maxNewTokens: 3, stopAtEos: false });
      expect(out).toMatchObject({ promptTokens: [5, 9, 30], tokens: [1, 2, 3], finishReason: 'length' });
      const steps = forwards(workers[1]!);
      expect(steps.map((s) => [...s.ids])).toEqual([[0], [1], [2]]);
      expect(steps.map((s) => [s.start, [...s.positions], s.rows, s.logits])).toEqual([
        [0, [0], 1, 'last'],
        [1, [1], 1, 'last'],
        [2, [2], 1, 'last'],
      ]);
      expect(steps[0]!.encoder).toEqual({ ids: Int32Array.of(5, 9, 30), positions: Int32Array.of(0, 1, 2), keyMask: Int32Array.of(1, 1, 1), rows: 3 });
      expect(steps.slice(1).every((s) => s.encoder === undefined)).toBe(true);
      // generation_config.json's end of sequence (1) stops it.
      const [eos] = await model.generate([[5, 9]], { maxNewTokens: 4 });
      expect(eos).toMatchObject({ tokens: [1], finishReason: 'eos' });
      const before = forwards(workers[1]!).length;
      const [beams] = await model.generate([[5, 9]], { maxNewTokens: 2, numBeams: 2, stopAtEos: false });
      expect(beams!.tokens).toEqual([1, 2]);
      expect(forwards(workers[1]!)[before]).toMatchObject({ batch: 2, ids: Int32Array.of(0, 0), encoder: { ids: Int32Array.of(5, 9), rows: 2, repeat: 2 } });
      await model.dispose();
    });
  });

  it.skipIf(!hasShared)("an encoder–decoder's encoder input longer than its position table (BART) is refused as in Node, before any rank runs it", async () => {
    await withGolden('bart', async (url) => {
      const { opened, workers } = await open({}, {}, url);
      const model = await opened;
      const long = Array.from({ length: 129 }, (_, i) => 3 + (i % 200));
      for (const request of [() => model.seq2seqLogits([long]), () => model.generate([long], { maxNewTokens: 1 }), () => model.encoderOutputs([long])]) {
        const error = await expectTpError(request, { code: 'invalid-argument', name: 'ArgumentError' });
        expect(error.message).toContain('an encoder input of 129 tokens is longer than 128');
      }
      // At the limit it runs, from BART's decoder start token (2).
      const [logits] = await model.logits([long.slice(0, 128)]);
      expect(logits!.indexOf(100)).toBe(3);
      expect(forwards(workers[0]!)).toHaveLength(1);
      await model.dispose();
    });
  });

  it.skipIf(!hasShared)('a causal model refuses the encoder methods and decoder inputs, naming what it has', async () => {
    const { opened } = await open();
    const model = await opened;
    const error = await expectTpError(() => model.encoderOutputs([[5, 6]]), { code: 'invalid-argument' });
    expect(error.message).toContain('encoderOutputs() does not fit');
    expect(error.message).toContain('a causal language model; it has generate() and logits()');
    await expectTpError(() => model.seq2seqLogits([[5, 6]]), { code: 'invalid-argument' });
    const decoder = await expectTpError(() => model.logits([[5, 6]], { decoderTokens: [[0]] }), { code: 'invalid-argument' });
    expect(decoder.message).toContain('is not an encoder–decoder model');
    await model.dispose();
  });

  it.skipIf(!hasShared)('still refuses what the engine cannot run (runnableGraph: a Longformer config over the RoBERTa golden), naming why, before starting any worker', async () => {
    const dir = await temp();
    const roberta = path.join(GOLDEN_DIR, 'roberta');
    const config = JSON.parse(await readFile(path.join(roberta, 'config.json'), 'utf8'));
    await putJson(dir, 'config.json', { ...config, model_type: 'longformer', architectures: ['LongformerForMaskedLM'], attention_window: [4, 4] });
    await copyFile(path.join(roberta, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const folder = await serveFolder(dir);
    try {
      const { opened, workers } = await open({}, {}, folder.url(''));
      const error = await expectTpError(() => opened, { code: 'unsupported-model', name: 'UnsupportedModelError' });
      expect(error.message).toContain('tp plans Longformer encoders but its engine does not run them yet');
      expect(error.message).toContain('openWebModel runs these model types');
      expect(workers).toEqual([]);
    } finally {
      await folder.close();
    }
  });

  it.skipIf(!hasShared)('refuses bad options before fetching anything', async () => {
    const { opened } = await open({}, { kvDtype: 'bf16' });
    await expectTpError(() => opened, { code: 'invalid-argument', name: 'ArgumentError' });
    const zero = await open({}, { tpSize: 0 });
    await expectTpError(() => zero.opened, { code: 'invalid-argument', name: 'ArgumentError' });
  });

  it.skipIf(!hasShared)("with tokenizer.json: text prompts, encode/decode and each result's text; shards from model.safetensors.index.json", async () => {
    const dir = await temp();
    for (const f of ['config.json', 'generation_config.json']) await copyFile(path.join(LLAMA, f), path.join(dir, f));
    await copyFile(path.join(LLAMA, 'model.safetensors'), path.join(dir, 'shard-1.safetensors'));
    const ckpt = await openCheckpoint(LLAMA);
    await putJson(dir, 'model.safetensors.index.json', { weight_map: Object.fromEntries([...ckpt.tensors.keys()].map((name) => [name, 'shard-1.safetensors'])) });
    ckpt.close();
    // A word-level vocabulary: word i is id i ("w0" … "w255").
    const vocab = Object.fromEntries(Array.from({ length: VOCAB }, (_, i) => [`w${i}`, i]));
    await putJson(dir, 'tokenizer.json', {
      version: '1.0',
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab, unk_token: 'w0' },
    });
    const folder = await serveFolder(dir);
    try {
      const { opened, workers } = await open({}, {}, folder.url(''));
      const model = await opened;
      expect((workers[0]!.received[0] as WebRankInit).files).toEqual([{ url: folder.url('shard-1.safetensors'), size: 429408 }]);
      expect(model.plan).toEqual(plan);
      expect(model.encode('w5 w6')).toEqual([5, 6]);
      expect(model.decode([7, 8])).toBe('w7 w8');
      const [out] = await model.generate(['w5 w6'], { maxNewTokens: 3 });
      expect(out).toMatchObject({ promptTokens: [5, 6], tokens: [7, 8, 9], text: 'w7 w8 w9' });
      await model.dispose();
    } finally {
      await folder.close();
    }
  });

  it.skipIf(!hasShared)('refuses an index that places a tensor in a shard that does not hold it (index-mismatch, naming the tensor), as openCheckpoint does', async () => {
    const dir = await temp();
    await copyFile(path.join(LLAMA, 'config.json'), path.join(dir, 'config.json'));
    await copyFile(path.join(LLAMA, 'model.safetensors'), path.join(dir, 'shard-1.safetensors'));
    await writeFile(path.join(dir, 'shard-2.safetensors'), oneTensorFile('extra.weight'));
    const ckpt = await openCheckpoint(LLAMA);
    const names = [...ckpt.tensors.keys()];
    ckpt.close();
    const map = Object.fromEntries(names.map((name) => [name, 'shard-1.safetensors']));
    map['lm_head.weight'] = 'shard-2.safetensors';
    await putJson(dir, 'model.safetensors.index.json', { weight_map: map });
    const folder = await serveFolder(dir);
    try {
      const { opened, workers } = await open({}, {}, folder.url(''));
      const error = await expectTpError(() => opened, { code: 'index-mismatch', name: 'CheckpointError' });
      expect(error.message).toContain('lm_head.weight');
      expect(error.message).toContain('places this tensor in shard-2.safetensors but it is in shard-1.safetensors');
      expect(workers).toHaveLength(0);
    } finally {
      await folder.close();
    }
  });

  it.skipIf(!hasShared)('refuses an index whose shard lies outside the folder', async () => {
    const dir = await temp();
    await copyFile(path.join(LLAMA, 'config.json'), path.join(dir, 'config.json'));
    await put(dir, 'model.safetensors.index.json', JSON.stringify({ weight_map: { 'lm_head.weight': '../elsewhere/model.safetensors' } }));
    const folder = await serveFolder(dir);
    try {
      const { opened } = await open({}, {}, folder.url(''));
      await expectTpError(() => opened, { code: 'index-escapes-folder', name: 'CheckpointError' });
    } finally {
      await folder.close();
    }
  });
});

describe('serveWebRank', () => {
  it("starts the rank from the page's first message, fetching with the rank's fetch, and reports a failure to make its device", async () => {
    const posted: FromWorker[] = [];
    const listeners = new Set<(event: { data: unknown }) => void>();
    let closed = false;
    const scope = {
      postMessage: (m: unknown) => posted.push(m as FromWorker),
      addEventListener: (_: 'message', l: (event: { data: unknown }) => void) => listeners.add(l),
      removeEventListener: (_: 'message', l: (event: { data: unknown }) => void) => listeners.delete(l),
      close: () => (closed = true),
    };
    const fetched: Array<{ url: string; rank: number; authorization: string | null }> = [];
    const aborted: number[] = [];
    serveWebRank(
      { ...backend, createRank: async () => Promise.reject(new TpError('backend-unavailable', 'no WebGPU adapter')), abortCommunicator: (_, rank) => aborted.push(rank) },
      {
        scope,
        fetch: async (url, init, rank) => {
          fetched.push({ url, rank, authorization: new Headers(init.headers).get('Authorization') });
          return new Response(null, { status: 503, statusText: 'Service Unavailable' });
        },
      },
    );
    for (const l of [...listeners]) l({ data: { type: 'something else' } });
    expect(fetched).toEqual([]);
    const init = { type: 'tp-web-rank', rank: 1, world: 2, communicator: {}, backendOptions: {}, plan: {}, kvDtype: 'f32', config: 'http://x/config.json', files: [{ url: 'http://x/model.safetensors', size: 100 }], requestInit: { headers: [['Authorization', 'Bearer t']] }, mergeGapBytes: 0 };
    for (const l of [...listeners]) l({ data: init });
    await expect.poll(() => posted.length).toBeGreaterThan(0);
    // The config was fetched with rank 1's fetch and the page's headers; the server failed, and the rank says so.
    expect(fetched[0]).toEqual({ url: 'http://x/config.json', rank: 1, authorization: 'Bearer t' });
    expect(posted[0]).toMatchObject({ type: 'error', id: null, rank: 1, error: { code: 'read-failed' } });
    expect(posted[0]!.type === 'error' && posted[0]!.error.message).toMatch(/503/);
    expect(aborted).toEqual([1]);
    // Dispose still answers, and closes the worker.
    for (const l of [...listeners]) l({ data: { type: 'dispose', id: 7 } satisfies ToWorker });
    await expect.poll(() => closed).toBe(true);
    expect(posted.at(-1)).toEqual({ type: 'done', id: 7, rank: 1 });
  });
});

/**
 * The model page of the headless-Chromium test: the golden Llama at TP=2 in a browser through
 * @tp/core/browser's openWebModel. The page reads config.json, the safetensors header and
 * generation_config.json over HTTP, plans as Node does, and starts two Web Workers (model-worker.ts),
 * each with its own adapter and device, loading only its share of the weights. It then asks for the
 * logits of golden.json's input_ids at every position and 8 greedy tokens. Then the golden BERT (an
 * encoder) at TP=2 the same way: encoderOutputs of golden.json's input_ids and token_type_ids, its
 * last hidden state and masked-LM logits. Results go to `window.tpModel`.
 */
import { openWebModel, type TPPlan, type WebModel } from '@tp/core/browser';
import { browserBackend } from '../../src/browser.js';

export interface ModelResults {
  crossOriginIsolated: boolean;
  done: boolean;
  error?: string;
  /** The logits at every prompt position, [batch][length × vocab]. */
  logits?: number[][];
  /** Greedy: 8 new tokens per sequence and the logits that chose each, [batch][8][vocab]. */
  tokens?: number[][];
  stepLogits?: number[][][];
  finishReasons?: string[];
  /** Per rank: what the plan says it reads, and what it reported reading when ready. */
  ranks?: Array<{ bytesToRead: number; bytesRead: number; loadMs: number }>;
  /** The plan the page made (from the headers it fetched). */
  plan?: TPPlan;
  /** Whether the folder had a tokenizer.json, and a text prompt's round trip when it did. */
  hasTokenizer?: boolean;
  roundTrip?: { text: string; ids: number[]; decoded: string; generated: string | undefined };
  /** A request after dispose: the error it got. */
  afterDispose?: string;
  /** The golden BERT at TP=2: the last hidden state and masked-LM logits per sequence, [batch][length × …]. */
  bert?: { hidden: number[][]; logits: number[][]; plan: TPPlan };
  /** What failed on the way to `bert`, if anything did. */
  bertError?: string;
}

declare global {
  interface Window {
    tpModel?: ModelResults;
  }
}

const WORLD = 2;
const NEW_TOKENS = 8;
const BASE = new URL('/golden/llama/', location.href).href;
const BERT = new URL('/golden/bert/', location.href).href;
const withRank = (url: string, who: string) => `${url}${url.includes('?') ? '&' : '?'}rank=${who}`;

async function main(): Promise<void> {
  const state: ModelResults = { crossOriginIsolated, done: false };
  window.tpModel = state;
  let model: WebModel | undefined;
  try {
    const golden = (await (await fetch(`${BASE}golden.json`)).json()) as { input_ids: number[][] };
    const sequences = golden.input_ids;
    model = await openWebModel({
      url: BASE,
      tpSize: WORLD,
      kvDtype: 'f32',
      backend: browserBackend,
      startWorker: () => new Worker(new URL('./model-worker.js', import.meta.url), { type: 'module' }),
      // The page's own requests are counted apart from each rank's.
      fetch: (url, init) => fetch(withRank(url, 'page'), init),
    });
    state.plan = model.plan;
    state.ranks = model.ranks.map((r) => ({ bytesRead: r.bytesRead, loadMs: r.loadMs, bytesToRead: model!.plan.ranks[r.rank]!.bytesToRead }));

    // The logits at every prompt position (the prefill), as InferenceSession.logits gives them.
    const logits = await model.logits(sequences);
    state.logits = logits.map((l) => Array.from(l));

    // Greedy on the KV cache, with the logits that chose each token.
    const results = await model.generate(sequences, { maxNewTokens: NEW_TOKENS, stopAtEos: false, returnLogits: true });
    state.tokens = results.map((r) => r.tokens);
    state.stepLogits = results.map((r) => r.stepLogits!.map((row) => Array.from(row)));
    state.finishReasons = results.map((r) => r.finishReason);

    state.hasTokenizer = model.tokenizer !== undefined;
    if (model.tokenizer !== undefined) {
      const text = 'The quick brown fox';
      const ids = model.encode(text);
      const [out] = await model.generate([text], { maxNewTokens: 2, stopAtEos: false });
      state.roundTrip = { text, ids, decoded: model.decode(ids), generated: out!.text };
    }
    await model.dispose();
    await model.logits(sequences).catch((e: Error) => (state.afterDispose = e.message));
  } catch (error) {
    state.error = (error as Error)?.stack ?? String(error);
    await model?.dispose().catch(() => undefined);
  }
  await runBert(state);
  state.done = true;
}

/** An encoder: the golden BERT's last hidden state and masked-LM logits, with its token types. */
async function runBert(state: ModelResults): Promise<void> {
  let model: WebModel | undefined;
  try {
    const golden = (await (await fetch(`${BERT}golden.json`)).json()) as { input_ids: number[][]; token_type_ids: number[][] };
    model = await openWebModel({
      url: BERT,
      tpSize: WORLD,
      backend: browserBackend,
      startWorker: () => new Worker(new URL('./model-worker.js', import.meta.url), { type: 'module' }),
    });
    const encoded = await model.encoderOutputs(golden.input_ids.map((tokens, b) => ({ tokens, tokenTypes: golden.token_type_ids[b]! })), { hidden: true, logits: true });
    state.bert = { hidden: encoded.map((o) => Array.from(o.hidden!)), logits: encoded.map((o) => Array.from(o.logits!)), plan: model.plan };
  } catch (error) {
    state.bertError = (error as Error)?.stack ?? String(error);
  } finally {
    await model?.dispose().catch(() => undefined);
  }
}

void main();

/**
 * A model in a browser: the page opens a checkpoint folder by URL, plans it from the config and the
 * safetensors headers it fetches (as Node plans from the folder), starts one Web Worker per rank and
 * answers `logits`, `generate`, `encoderOutputs` and `seq2seqLogits` — the Node session's methods
 * (model-methods.ts) and requests (model-requests.ts) over the same rank messages (coordinator.ts).
 * Each worker calls `serveWebRank` with its backend: it runs the rank host (rank-host.ts) on its own
 * device and fetches only its own byte ranges of the weights (HTTP Range requests, http-source.ts). No
 * Node module anywhere: this is part of @tp/core/browser.
 *
 * Every kind the engine runs opens here — causal language models, encoders (BERT family, Perceiver)
 * and encoder–decoders (T5, BART…); what the engine cannot run is refused (runnableGraph) before any
 * worker starts.
 */
import type { Backend, CommunicatorInit, StorageDtype } from '../backend/index.js';
import { checkWeightMap, httpByteSource, openCheckpointFrom } from '../checkpoint/index.js';
import { ArgumentError, CheckpointError, TpError } from '../errors/index.js';
import { createConfigReader, type DecoderSpec, type ModelGraph, type Seq2SeqSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { RankCoordinator, type LoadProgressEvent, type RankLoad } from './coordinator.js';
import type { GenerateOptions, GenerateResult } from './decode-loop.js';
import { runnableGraph } from './runnable.js';
import { parseGenerationConfig, type GenerationDefaults } from './generation.js';
import type { FromWorker, ToWorker } from './messages.js';
import { ModelMethods, modelSpecs, type EncoderInput, type EncoderOutput, type EncoderOutputOptions, type LogitsOptions, type Seq2SeqOutput } from './model-methods.js';
import { ModelRequests } from './model-requests.js';
import { rankError } from './rank-errors.js';
import { hostRank } from './rank-host.js';
import { checkPlanOptions, checkRankMemory, planModel, type ModelPlanOptions } from './session-plan.js';
import { tokenizerFromJson, type TextTokenizer } from './tokenizer.js';

type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** What a page needs of a Web Worker (a DOM `Worker` is one). */
export interface RankWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: 'message' | 'messageerror' | 'error', listener: (event: any) => void): void;
}

export interface WebModelOptions extends ModelPlanOptions {
  /** The checkpoint folder's URL (relative to the page's): config.json, model.safetensors or model.safetensors.index.json and its shards, optionally generation_config.json, tokenizer.json, tokenizer_config.json. */
  url: string | URL;
  /** The backend (e.g. `browserBackend` of @tp/backend-webgpu/browser): the page plans with it and makes the communicator. */
  backend: Backend;
  /** A new Web Worker for `rank`, whose module calls `serveWebRank` with the same backend. */
  startWorker: (rank: number) => RankWorker;
  /** The page's fetch (default: the global one), for config.json, the headers, generation_config.json and the tokenizer. */
  fetch?: FetchLike;
  /**
   * Request options every request carries, the workers' too (headers, credentials, mode, cache,
   * referrerPolicy; a signal stays with the page's own requests).
   */
  requestInit?: RequestInit;
  /** Runs of weights at most this many bytes apart are fetched as one request (default 0; see openCheckpointFrom). */
  mergeGapBytes?: number;
  onProgress?: (event: LoadProgressEvent) => void;
  /** How long a rank waits in a collective before naming the ranks that never came (default 60 s). */
  collectiveTimeoutMs?: number;
}

/** The message a page sends each of its workers first: what `serveWebRank` needs to start the rank. */
export interface WebRankInit {
  type: 'tp-web-rank';
  rank: number;
  world: number;
  communicator: CommunicatorInit;
  backendOptions: Record<string, unknown>;
  plan: TPPlan;
  kvDtype: StorageDtype;
  /** Absolute URLs of config.json and of each safetensors file, with the file sizes the page read. */
  config: string;
  files: Array<{ url: string; size: number }>;
  requestInit: RequestInit;
  mergeGapBytes: number;
}

/** A worker's global scope, as far as `serveWebRank` uses it (a DedicatedWorkerGlobalScope is one). */
export interface WebRankScope {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  removeEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  close(): void;
}

export interface ServeWebRankOptions {
  /** The worker's fetch for its weight requests (default: the global one); `rank` is this worker's. */
  fetch?: (url: string, init: RequestInit, rank: number) => Promise<Response>;
  /** Default: the worker's own global scope. */
  scope?: WebRankScope;
}

/**
 * What a rank's Web Worker module calls: it waits for the page's first message (WebRankInit), then
 * hosts the rank — its own device from `backend`, its share of the weights fetched over HTTP Range
 * requests — answering the page's messages until disposed.
 */
export function serveWebRank(backend: Pick<Backend, 'createRank' | 'abortCommunicator'>, options: ServeWebRankOptions = {}): void {
  const scope = options.scope ?? (globalThis as unknown as WebRankScope);
  const onInit = (event: { data: unknown }) => {
    const init = event.data as WebRankInit;
    if (init?.type !== 'tp-web-rank') return;
    scope.removeEventListener('message', onInit);
    const rankFetch = options.fetch;
    const source = (url: string, size?: number) =>
      httpByteSource(url, { ...(rankFetch ? { fetch: (u: string, i: RequestInit) => rankFetch(u, i, init.rank) } : {}), init: init.requestInit, ...(size !== undefined ? { size } : {}) });
    hostRank({
      init: { rank: init.rank, world: init.world, communicator: init.communicator, options: init.backendOptions },
      plan: init.plan,
      kvDtype: init.kvDtype,
      backend: async () => backend,
      openCheckpoint: () => openCheckpointFrom({ config: source(init.config), files: init.files.map((f) => source(f.url, f.size)) }, { mergeGapBytes: init.mergeGapBytes }),
      channel: {
        post: (message, transfer) => scope.postMessage(message, transfer),
        listen: (handler) => scope.addEventListener('message', (e) => handler(e.data as ToWorker)),
        close: () => scope.close(),
      },
    });
  };
  scope.addEventListener('message', onInit);
}

/** A model (causal, encoder or encoder–decoder) whose ranks run in the page's Web Workers. */
export class WebModel {
  private readonly requests: ModelRequests;
  private readonly methods: ModelMethods;
  private disposed: Promise<void> | undefined;

  constructor(
    /** The checkpoint folder's absolute URL, ending in '/'. */
    readonly url: string,
    readonly graph: ModelGraph,
    readonly plan: TPPlan,
    /** The decoder's spec (an encoder–decoder's decoder stack), or an encoder's. */
    readonly spec: DecoderSpec,
    /** An encoder–decoder's spec (undefined for other kinds). */
    readonly seq2seq: Seq2SeqSpec | undefined,
    /** What generation_config.json says (empty without one); generate's options override it. */
    readonly generation: GenerationDefaults,
    readonly tokenizer: TextTokenizer | undefined,
    /** Each rank's load (weight bytes it fetched, its load time) and the wall time until all were ready. */
    readonly load: { ranks: RankLoad[]; wallMs: number },
    private readonly coordinator: RankCoordinator,
  ) {
    this.requests = new ModelRequests({ graph, spec, seq2seq, generation, tokenizer, source: url, ranks: coordinator });
    this.methods = new ModelMethods(this.requests, plan);
  }

  /** Each rank's load report, by rank. */
  get ranks(): RankLoad[] {
    return this.load.ranks;
  }

  /**
   * Logits at every position of each sequence: one Float32Array of [length × vocab] per sequence —
   * next-token logits of a causal model, masked-LM logits of an encoder, the decoder's of an
   * encoder–decoder (options: its decoder input) — as Node's session.
   */
  logits(sequences: readonly (readonly number[])[], options: LogitsOptions = {}): Promise<Float32Array[]> {
    return this.methods.logits(sequences, options);
  }

  /**
   * Generate from text prompts (with the tokenizer) or token-id prompts: greedy search, sampling, or
   * beam search when numBeams (or generation_config.json's num_beams) is above 1; a causal model or an
   * encoder–decoder — as Node's session.
   */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    return this.methods.generate(prompts, options);
  }

  /**
   * An encoder's last hidden state and masked-LM logits (and the pooler's output, when asked) per
   * input, or an encoder–decoder's encoder states — as Node's session.
   */
  encoderOutputs(inputs: ReadonlyArray<EncoderInput | string | readonly number[]>, options: EncoderOutputOptions = {}): Promise<EncoderOutput[]> {
    return this.methods.encoderOutputs(inputs, options);
  }

  /** An encoder–decoder's decoder logits per decoder position, and the encoder states when asked — as Node's session. */
  seq2seqLogits(sequences: ReadonlyArray<readonly number[]>, options: LogitsOptions & { hidden?: boolean } = {}): Promise<Seq2SeqOutput[]> {
    return this.methods.seq2seqLogits(sequences, options);
  }

  /** Text to token ids with the checkpoint's tokenizer.json (refused without one). */
  encode(text: string): number[] {
    return this.requests.encode(text);
  }

  /** Token ids to text, special tokens skipped (refused without a tokenizer.json). */
  decode(ids: readonly number[]): string {
    if (this.tokenizer === undefined) throw new ArgumentError({ argument: 'ids', detail: `${this.url} has no tokenizer.json; there is no text for token ids` });
    return this.tokenizer.decode(ids);
  }

  /** The most positions a sequence may use, or undefined when the model has no limit. */
  get positionLimit(): number | undefined {
    return this.requests.positionLimit;
  }

  /** The error that ended the model (a rank's failure, or dispose), if one did. */
  get failed(): Error | undefined {
    return this.coordinator.ended;
  }

  /**
   * Release every rank: requests not yet started are refused; the one the ranks are on finishes (a
   * healthy rank is never stopped mid-request); then each rank disposes its device and answers, and
   * every worker is terminated. A rank that does not answer the dispose within `timeoutMs` is
   * terminated anyway. Safe to call twice.
   */
  dispose(timeoutMs = 10_000): Promise<void> {
    if (this.disposed) return this.disposed;
    const disposed = new TpError('invalid-argument', 'the model was disposed');
    const healthy = this.coordinator.close(disposed);
    this.disposed = (async () => {
      if (healthy) {
        await this.coordinator.whenDrained();
        if (!this.coordinator.hasFailed) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
          await Promise.race([this.coordinator.send({ type: 'dispose', id: 0 }).then(() => undefined, () => undefined), late]);
          clearTimeout(timer);
        }
      }
      // Every worker terminated, and anything still waiting on a rank rejected rather than left hanging.
      this.coordinator.fail(disposed);
    })();
    return this.disposed;
  }
}

/**
 * Open a checkpoint by URL and start its ranks in Web Workers: the page fetches config.json, the
 * index when there is one and each safetensors header (no weight byte), generation_config.json and
 * tokenizer.json when present (a 404 means absent), plans, and starts `tpSize` workers; it resolves
 * once every rank has loaded its share, or rejects with the first rank's error (every worker then
 * terminated).
 */
export async function openWebModel(options: WebModelOptions): Promise<WebModel> {
  const { tpSize, kvDtype } = checkPlanOptions(options, options.backend);
  const base = folderUrl(options.url);
  const doFetch: FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  const init = options.requestInit ?? {};
  const source = (url: string) => httpByteSource(url, { fetch: doFetch, init });

  const { files, weightMap } = await weightFiles(base, doFetch, init);
  const ckpt = await openCheckpointFrom({ config: source(`${base}config.json`), files: files.map(source) }, { mergeGapBytes: options.mergeGapBytes ?? 0 });
  if (weightMap !== undefined) {
    try {
      checkWeightMap(ckpt.tensors, weightMap, `${base}${INDEX_FILE}`);
    } catch (error) {
      ckpt.close();
      throw error;
    }
  }
  const sizes = ckpt.files.map((f) => f.fileSize);
  const graph = runnableGraph(ckpt, 'openWebModel runs');
  const { spec, seq2seq } = modelSpecs(graph, createConfigReader(ckpt.config));
  const plan = planModel(graph, options.backend, options);
  await checkRankMemory(options.backend, plan, options.backendOptions ?? {});
  const generationFile = `${base}generation_config.json`;
  const generationText = await fetchOptional(doFetch, generationFile, init);
  const generation = generationText === undefined ? {} : parseGenerationConfig(generationText, generationFile);
  const tokenizer = await fetchTokenizer(base, doFetch, init);

  const communicator = options.backend.createCommunicator(tpSize, { timeoutMs: options.collectiveTimeoutMs ?? 60_000, backendOptions: options.backendOptions ?? {} });
  const started = Date.now();
  const workers: RankWorker[] = [];
  const coordinator = new RankCoordinator(
    Array.from({ length: tpSize }, (_, rank) => ({
      post: (message: ToWorker) => workers[rank]!.postMessage(message),
      terminate: () => workers[rank]?.terminate(),
    })),
    options.onProgress,
  );
  try {
    for (let rank = 0; rank < tpSize; rank++) {
      const worker = options.startWorker(rank);
      workers.push(worker);
      worker.addEventListener('message', (e: { data: FromWorker }) => coordinator.receive(e.data));
      worker.addEventListener('messageerror', () => coordinator.fail(rankError(rank, { message: 'a message from the worker could not be read (messageerror)' })));
      worker.addEventListener('error', (e: { message?: string }) => coordinator.fail(rankError(rank, { message: `the worker failed: ${e?.message || 'its script did not load or threw'}` })));
      const message: WebRankInit = {
        type: 'tp-web-rank',
        rank,
        world: tpSize,
        communicator,
        backendOptions: options.backendOptions ?? {},
        plan,
        kvDtype,
        config: `${base}config.json`,
        files: files.map((url, i) => ({ url, size: sizes[i]! })),
        requestInit: cloneableInit(init),
        mergeGapBytes: options.mergeGapBytes ?? 0,
      };
      worker.postMessage(message);
    }
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  const ranks = await coordinator.ready;
  return new WebModel(base, graph, plan, spec, seq2seq, generation, tokenizer, { ranks, wallMs: Date.now() - started }, coordinator);
}

/** The folder's absolute URL, ending in '/' (relative URLs resolve against the page's). */
function folderUrl(url: string | URL): string {
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  const resolved = new URL(String(url), page);
  if (!resolved.pathname.endsWith('/')) resolved.pathname += '/';
  return resolved.href;
}

/** A text file of the folder, or undefined when the server answers 404. */
async function fetchOptional(doFetch: FetchLike, url: string, init: RequestInit): Promise<string | undefined> {
  let response: Response;
  try {
    response = await doFetch(url, { ...init, method: 'GET' });
  } catch (cause) {
    throw new CheckpointError('read-failed', { file: url, detail: `the request failed (${(cause as Error)?.message ?? String(cause)})`, hint: 'Check that the server is reachable' }, { cause });
  }
  if (response.status === 404) {
    void response.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!response.ok) throw new CheckpointError('read-failed', { file: url, detail: `HTTP ${response.status} ${response.statusText}`.trim() });
  return response.text();
}

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/**
 * The URLs of the weight files: the shards model.safetensors.index.json names, in the order it first
 * names them (as openCheckpoint lists them), or model.safetensors without an index. A shard must lie
 * inside the folder: a crafted index could otherwise make the ranks fetch any URL.
 */
async function weightFiles(base: string, doFetch: FetchLike, init: RequestInit): Promise<{ files: string[]; weightMap?: Map<string, string> }> {
  const indexUrl = `${base}${INDEX_FILE}`;
  const text = await fetchOptional(doFetch, indexUrl, init);
  if (text === undefined) return { files: [`${base}${SINGLE_FILE}`] };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError('index-invalid', { file: indexUrl, detail: `is not valid JSON (${(cause as Error).message})` }, { cause });
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError('index-invalid', { file: indexUrl, detail: 'has no "weight_map" object' });
  }
  const urls: string[] = [];
  const placed = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new CheckpointError('index-invalid', { file: indexUrl, tensor, detail: `weight_map value ${JSON.stringify(shard)} must be a file name` });
    }
    const url = new URL(shard, base).href;
    if (!url.startsWith(base) || shard.split(/[/\\]/).includes('..') || /^[a-z][a-z0-9+.-]*:|^[/\\]/i.test(shard)) {
      throw new CheckpointError('index-escapes-folder', { file: indexUrl, tensor, detail: `weight_map points to "${shard}", which is outside the model folder`, hint: 'Shards must be files inside the checkpoint folder' });
    }
    if (!urls.includes(url)) urls.push(url);
    placed.set(tensor, url);
  }
  if (urls.length === 0) throw new CheckpointError('index-invalid', { file: indexUrl, detail: 'weight_map names no shard' });
  return { files: urls, weightMap: placed };
}

/** tokenizer.json (with tokenizer_config.json when present), or undefined without one. */
async function fetchTokenizer(base: string, doFetch: FetchLike, init: RequestInit): Promise<TextTokenizer | undefined> {
  const file = `${base}tokenizer.json`;
  const text = await fetchOptional(doFetch, file, init);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError('read-failed', { file, detail: `cannot be read as JSON (${(cause as Error).message})` }, { cause });
  }
  // Optional, as loadTokenizer reads it: absent or unreadable means no settings.
  let config: unknown = {};
  try {
    config = JSON.parse((await fetchOptional(doFetch, `${base}tokenizer_config.json`, init)) ?? '{}');
  } catch {
    config = {};
  }
  return tokenizerFromJson(json, config);
}

/** The request options a worker can be sent (a structured clone): no signal, headers as pairs. */
function cloneableInit(init: RequestInit): RequestInit {
  const out: RequestInit = {};
  if (init.headers !== undefined) out.headers = [...new Headers(init.headers).entries()];
  for (const key of ['credentials', 'mode', 'cache', 'referrerPolicy'] as const) {
    const value = (init as Record<string, unknown>)[key];
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

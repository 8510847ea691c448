/**
 * The backend conformance suite: every `Rank` kernel against the host reference (reference.ts) on
 * seeded random inputs at awkward sizes, uploads and dtypes, KV caches (growth and beam-search
 * reordering), attention in all its forms,
 * MoE routing end to end, the errors the interface promises, and collectives across worker threads.
 *
 * It is test-framework agnostic: `conformanceCases(backend)` returns named cases whose `run` throws an
 * Error naming the kernel, the sizes, the element, and the value got and expected. A backend's test is
 *
 *     for (const c of conformanceCases(backend)) it(c.name, c.run);
 *
 * Outputs are poisoned: before each checked step, NaN-filled buffers are allocated both as long-lived
 * tensors (then freed) and inside a step of their own, so memory a kernel forgets to write shows up as
 * NaN; every output's shape, dtype and element count are checked exactly.
 */
import type {
  Activation,
  AttentionSpec,
  AttentionStep,
  Backend,
  CommunicatorInit,
  DeviceDtype,
  DeviceTensor,
  HostTensor,
  NormSpec,
  Rank,
  StorageDtype,
} from '../backend/index.js';
import {
  ALL_REDUCES,
  allGatherInput,
  allReduceInput,
  broadcastInput,
  type CollectiveScenario,
  type CollectiveWorkerData,
  type CollectiveWorkerMessage,
} from './collective-data.js';
import * as ref from './reference.js';

export interface ConformanceCase {
  readonly name: string;
  /** Resolves when the backend conforms; throws an Error saying what differs otherwise. */
  run(): Promise<void>;
}

export interface ConformanceOptions {
  /** World sizes of the collective cases (default 1, 2, 3, 4). */
  worlds?: number[];
  /** Storage dtypes to test, for weights and KV caches (default, and at most, `backend.storageDtypes` and `backend.kvDtypes`). */
  dtypes?: StorageDtype[];
}

// ───────────────────────────── tolerances and comparison ─────────────────────────────

type Tolerance =
  | { kind: 'exact' }
  /** |got - expected| ≤ rel · max |expected| (reductions: matmul, norms, attention). */
  | { kind: 'max'; rel: number }
  /** |got - expected| ≤ rel · |expected| + abs (elementwise math). */
  | { kind: 'element'; rel: number; abs: number };

const EXACT: Tolerance = { kind: 'exact' };
const REDUCTION: Tolerance = { kind: 'max', rel: 1e-5 };
const ATTENTION: Tolerance = { kind: 'max', rel: 2e-5 };
const ELEMENTWISE: Tolerance = { kind: 'element', rel: 2e-6, abs: 1e-6 };
const PROBABILITY: Tolerance = { kind: 'element', rel: 0, abs: 1e-6 };

class ConformanceError extends Error {
  override name = 'ConformanceError';
}

const fmt = (x: number) => (Number.isInteger(x) || !Number.isFinite(x) ? String(x) : x.toPrecision(9));
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function coordinates(index: number, shape: readonly number[]): string {
  const at: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    at.unshift(n === 0 ? 0 : rest % n);
    rest = n === 0 ? 0 : Math.floor(rest / n);
  }
  return `[${at.join(', ')}]`;
}

/** Throws a ConformanceError describing the first mismatch (and how many elements differ). */
function compare(what: string, shape: readonly number[], got: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): void {
  if (got.length !== expected.length) throw new ConformanceError(`${what}: ${got.length} elements, expected ${expected.length} (shape ${shapeText(shape)})`);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i]!)) maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  let first = -1;
  let firstAllowed = 0;
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    if (g === e || (Number.isNaN(g) && Number.isNaN(e))) continue;
    let allowed = 0;
    if (tol.kind === 'max') allowed = tol.rel * maxAbs;
    else if (tol.kind === 'element') allowed = tol.rel * Math.abs(e) + tol.abs;
    if (Math.abs(g - e) <= allowed) continue; // false for NaN and for mismatched infinities
    count++;
    if (first < 0) {
      first = i;
      firstAllowed = allowed;
    }
  }
  if (count === 0) return;
  const g = got[first]!;
  const e = expected[first]!;
  const why = Number.isNaN(g) ? ' — NaN: an element the kernel did not write (poisoned) or a NaN it produced' : '';
  const tolText = tol.kind === 'exact' ? 'exact match required' : `|Δ| ${fmt(Math.abs(g - e))} > tolerance ${fmt(firstAllowed)}${tol.kind === 'max' ? ` (${tol.rel} × max |expected| ${fmt(maxAbs)})` : ''}`;
  throw new ConformanceError(
    `${what}: ${count} of ${expected.length} elements differ; first at index ${first} ${coordinates(first, shape)} of ${shapeText(shape)}: got ${fmt(g)}, expected ${fmt(e)} (${tolText})${why}`,
  );
}

// ───────────────────────────── seeded data ─────────────────────────────

function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** mulberry32: small, fast and good enough for test data. */
class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(n: number, lo = -1, hi = 1): Float32Array {
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * this.next());
  }

  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }
}

// ───────────────────────────── one rank ─────────────────────────────

const f32Host = (values: Float32Array, shape: readonly number[]): HostTensor => ({
  bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  dtype: 'f32',
  shape,
});

/** A case's view of its rank: uploads, poisoned steps and checks whose errors name the case. */
class Ctx {
  constructor(
    readonly rank: Rank,
    readonly name: string,
  ) {}

  fail(message: string): never {
    throw new ConformanceError(message);
  }

  assert(ok: boolean, message: string): void {
    if (!ok) this.fail(message);
  }

  f32(values: ArrayLike<number>, shape: readonly number[], as?: DeviceDtype): DeviceTensor {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    this.assert(data.length === product(shape), `test bug: ${data.length} values for shape ${shapeText(shape)}`);
    const t = this.rank.upload(f32Host(data, shape), as);
    this.checkHandle(`upload(f32 ${shapeText(shape)}${as ? `, '${as}'` : ''})`, t, shape, as ?? 'f32');
    return t;
  }

  i32(values: ArrayLike<number>, shape: readonly number[] = [values.length]): DeviceTensor {
    const data = values instanceof Int32Array ? values : Int32Array.from(values);
    const t = this.rank.upload({ bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dtype: 'i32', shape });
    this.checkHandle(`upload(i32 ${shapeText(shape)})`, t, shape, 'i32');
    return t;
  }

  /** Upload `values` as raw bytes of `dtype` (rounded to nearest even), optionally stored as `as`. */
  raw(values: ArrayLike<number>, dtype: StorageDtype, shape: readonly number[], as?: DeviceDtype): DeviceTensor {
    const t = this.rank.upload({ bytes: ref.encodeDtype(values, dtype), dtype, shape }, as);
    this.checkHandle(`upload(${dtype} bytes ${shapeText(shape)}${as ? `, '${as}'` : ''})`, t, shape, as ?? dtype);
    return t;
  }

  checkHandle(what: string, t: DeviceTensor, shape: readonly number[], dtype: DeviceDtype): void {
    this.assert(t !== undefined && t !== null, `${what} returned ${String(t)}`);
    this.assert(
      t.shape.length === shape.length && t.shape.every((n, i) => n === shape[i]),
      `${what}: shape ${shapeText(t.shape)}, expected ${shapeText(shape)}`,
    );
    this.assert(t.dtype === dtype, `${what}: dtype ${t.dtype}, expected ${dtype}`);
  }

  /**
   * NaN everywhere a following allocation may land: a freed long-lived tensor, and the memory of two
   * finished steps (two, so that a backend whose step arena is sized by the previous step's peak has
   * its arena both created and filled).
   */
  async poison(floats: number): Promise<void> {
    const nan = new Float32Array(floats).fill(Number.NaN);
    const longLived = this.rank.upload(f32Host(nan, [floats]));
    this.rank.free(longLived);
    for (let i = 0; i < 2; i++) {
      this.rank.beginStep();
      try {
        this.rank.upload(f32Host(nan, [floats]));
      } finally {
        await this.rank.endStep();
      }
    }
  }

  /** Poison, then run `body` inside beginStep/endStep (endStep runs even when `body` throws). */
  async step<T>(body: () => Promise<T>, poisonFloats = 1 << 17): Promise<T> {
    await this.poison(poisonFloats);
    this.rank.beginStep();
    let result: T;
    try {
      result = await body();
    } catch (error) {
      await this.rank.endStep().catch(() => {});
      throw error;
    }
    await this.rank.endStep();
    return result;
  }

  /** Check t's shape, dtype and elements against `expected`; returns what was downloaded. */
  async expect(what: string, t: DeviceTensor, shape: readonly number[], expected: ArrayLike<number>, tol: Tolerance, dtype: DeviceDtype = 'f32'): Promise<Float32Array | Int32Array> {
    this.checkHandle(what, t, shape, dtype);
    const got = await this.rank.download(t);
    const want = dtype === 'i32' ? Int32Array : Float32Array;
    this.assert(got instanceof want, `${what}: download gave a ${got?.constructor?.name}, expected a ${want.name}`);
    this.assert(got.length === product(shape), `${what}: download gave ${got.length} elements, expected ${product(shape)} (shape ${shapeText(shape)})`);
    compare(what, shape, got, expected, tol);
    return got;
  }

  /** fn must throw synchronously (an enqueue-time check) an Error whose message mentions each of `mentions`. */
  expectThrows(what: string, fn: () => unknown, mentions: string[] = []): void {
    let result: unknown;
    try {
      result = fn();
    } catch (error) {
      this.assert(error instanceof Error, `${what} threw ${String(error)}, not an Error`);
      const message = (error as Error).message;
      for (const m of mentions) this.assert(message.includes(m), `${what} threw "${message}", which does not mention ${m}`);
      return;
    }
    this.fail(`${what} did not throw (it returned ${result === undefined ? 'undefined' : JSON.stringify((result as DeviceTensor).shape ?? result)})`);
  }
}

type Body = (c: Ctx, r: Random) => Promise<void>;
type Single = (name: string, body: Body) => void;

async function withRank(backend: Backend, name: string, body: Body): Promise<void> {
  const communicator = backend.createCommunicator(1, { timeoutMs: 5000 });
  const rank = await backend.createRank({ rank: 0, world: 1, communicator, options: {} });
  let failure: unknown;
  try {
    await body(new Ctx(rank, name), new Random(seedOf(name)));
  } catch (error) {
    failure = error instanceof ConformanceError ? error : new Error(`the backend threw: ${(error as Error)?.stack ?? String(error)}`, { cause: error });
  }
  try {
    await rank.dispose();
  } catch (error) {
    failure ??= new Error(`dispose() threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  if (failure !== undefined) throw failure;
}

// ───────────────────────────── uploads ─────────────────────────────

function bitsToF32(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

function uploadCases(single: Single, dtypes: StorageDtype[]): void {
  single('upload/download f32 round trip', async (c) => {
    const values = Float32Array.from([0, -0, 1, -1.5, Math.PI, 3.4028234663852886e38, -1e-30, 65504, 1e-7, 12345.678]);
    const t = c.f32(values, [2, 5]);
    await c.expect('download of an f32 upload', t, [2, 5], values, EXACT);
    c.rank.free(t);
  });

  single('upload/download i32 round trip', async (c) => {
    const values = Int32Array.from([0, -1, 1, 2147483647, -2147483648, 123456789, 7]);
    const t = c.i32(values, [7]);
    await c.expect('download of an i32 upload', t, [7], values, EXACT, 'i32');
    c.rank.free(t);
  });

  for (const d of dtypes) {
    if (d === 'f32') continue;
    single(`upload f32 as ${d}: round to nearest even`, async (c, r) => {
      // Exact ties between two neighbours, one bit either side of a tie, subnormals, the range's end.
      const special =
        d === 'bf16'
          ? [...bitsToF32([0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf818000, 0x40490fdb, 0x00018000, 0x7f7f0000])]
          : [1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -25, 3 * 2 ** -25, 2 ** -24, 65519, 65504, -65504, 0.1, 1e-5, 1 + 2 ** -11 + 2 ** -20];
      const values = Float32Array.from([...special, ...r.uniform(23, -8, 8)]);
      const t = c.f32(values, [values.length], d);
      await c.expect(`download of an f32 upload stored as ${d}`, t, [values.length], ref.roundToDtype(values, d), EXACT, d);
      c.rank.free(t);
    });
    single(`upload raw ${d} bytes, download widened to f32`, async (c, r) => {
      const values = ref.roundToDtype(r.uniform(37, -100, 100), d);
      const t = c.raw(values, d, [37]);
      await c.expect(`download of ${d} bytes`, t, [37], values, EXACT, d);
      const asF32 = c.raw(values, d, [37], 'f32');
      await c.expect(`download of ${d} bytes stored as f32`, asF32, [37], values, EXACT, 'f32');
      c.rank.free(t);
      c.rank.free(asF32);
    });
  }

  if (dtypes.includes('f16')) {
    single('upload as f16 of a value beyond its range throws', async (c) => {
      c.expectThrows("upload([1, 70000] as 'f16')", () => c.rank.upload(f32Host(Float32Array.from([1, 70000]), [2]), 'f16'));
    });
  }

  single('tensors made outside a step survive endStep', async (c, r) => {
    const w = r.uniform(9 * 33);
    const wt = c.f32(w, [9, 33]);
    for (let s = 0; s < 3; s++) {
      const x = r.uniform(3 * 33);
      await c.step(async () => {
        // allocate well past the previous step's memory, too
        for (let i = 0; i < 4; i++) c.f32(r.uniform(4096), [4096]);
        const y = c.rank.linear(c.f32(x, [3, 33]), wt);
        await c.expect(`step ${s + 1}: linear with a weight uploaded before the steps`, y, [3, 9], ref.linear(x, w, undefined, 3, 33, 9), REDUCTION);
      });
    }
    c.assert(typeof c.rank.memoryBytes() === 'number' && c.rank.memoryBytes() >= 0, `memoryBytes() returned ${c.rank.memoryBytes()}`);
    c.rank.free(wt);
  });

  // Nested steps (interface 4): one scope per layer, each handing its output to the enclosing step.
  single('nested steps: each scope keeps its output for the enclosing step, with its contents', async (c, r) => {
    const w = r.uniform(33 * 33, -0.3, 0.3);
    const wt = c.f32(w, [33, 33]);
    let x = r.uniform(3 * 33);
    const first = x;
    await c.step(async () => {
      let h = c.f32(x, [3, 33]);
      const early = c.f32(first, [3, 33]); // made by the outer step before the scopes: must outlive them
      for (let layer = 0; layer < 5; layer++) {
        c.rank.beginStep();
        // temporaries the scope releases, some larger than its output
        for (let i = 0; i < 3; i++) c.f32(r.uniform(4096), [4096]);
        const y = c.rank.activation(c.rank.linear(h, wt), 'silu');
        await c.rank.endStep(y);
        x = Float32Array.from(ref.activation(ref.linear(x, w, undefined, 3, 33, 33), 'silu'));
        h = y;
      }
      // what later scopes allocate must not land on a kept tensor
      await c.expect('the last scope output, after five scopes', h, [3, 33], x, REDUCTION);
      const sum = c.rank.add(h, early);
      c.rank.beginStep();
      c.f32(r.uniform(4096), [4096]);
      await c.rank.endStep();
      await c.expect('an outer-step tensor made before the scopes, added to the last output', sum, [3, 33], ref.add(x, first), REDUCTION);
    });
    c.rank.free(wt);
  });

  single('nested steps reuse each other\'s memory: 24 scopes of 1 MiB of temporaries do not hold 24 MiB', async (c, r) => {
    const floats = 1 << 18; // 1 MiB of f32
    const block = r.uniform(floats);
    await c.step(async () => {
      let h = c.f32(r.uniform(64), [64]);
      const scope = async () => {
        c.rank.beginStep();
        c.f32(block, [floats]);
        const y = c.rank.scale(h, 0.5);
        await c.rank.endStep(y);
        h = y;
      };
      // two scopes first: a backend may size a pool or arena by what it saw
      await scope();
      await scope();
      const before = c.rank.memoryBytes();
      for (let i = 0; i < 24; i++) await scope();
      const grown = c.rank.memoryBytes() - before;
      c.assert(grown < 8 * floats * 4, `memoryBytes() grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 24 scopes of 1 MiB each: released scope memory is not reused`);
    });
  });

  single('endStep(keep) on the outermost step throws (nothing encloses it)', async (c, r) => {
    c.rank.beginStep();
    const t = c.f32(r.uniform(8), [8]);
    let threw = false;
    try {
      await c.rank.endStep(t);
    } catch (error) {
      threw = true;
      c.assert(error instanceof Error && /endStep/.test(error.message), `endStep(keep) threw ${String(error)}, which does not name endStep`);
    }
    if (!threw) c.fail('endStep(keep) on the outermost step did not throw');
    // refused before anything happened: the step is still open
    await c.rank.endStep();
  });
}

// ───────────────────────────── linear, embedding, sinusoidal ─────────────────────────────

const LINEAR_SIZES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 7, 5],
  [3, 33, 9],
  [5, 130, 33],
  [1, 130, 130],
  [5, 7, 1],
  [2, 64, 64],
  [3, 1030, 17],
];

function linearCases(single: Single, dtypes: StorageDtype[]): void {
  for (const d of dtypes) {
    for (const [M, K, N] of LINEAR_SIZES) {
      for (const bias of [false, true]) {
        single(`linear ${d}: x [${M}, ${K}] · w [${N}, ${K}]ᵀ${bias ? ' + bias' : ''}`, async (c, r) => {
          const x = r.uniform(M * K);
          const w = ref.roundToDtype(r.uniform(N * K), d);
          const b = bias ? r.uniform(N) : undefined;
          const wt = c.f32(w, [N, K], d);
          const bt = b && c.f32(b, [N]);
          await c.step(async () => {
            const y = c.rank.linear(c.f32(x, [M, K]), wt, bt);
            await c.expect(`linear ${d} M ${M} K ${K} N ${N}${bias ? ' + bias' : ''}`, y, [M, N], ref.linear(x, w, b, M, K, N), REDUCTION);
          });
          c.rank.free(wt);
          if (bt) c.rank.free(bt);
        });
      }
    }
    single(`linear ${d}: weight uploaded as raw ${d} bytes`, async (c, r) => {
      const [M, K, N] = [3, 33, 9];
      const x = r.uniform(M * K);
      const w = ref.roundToDtype(r.uniform(N * K), d);
      const wt = c.raw(w, d, [N, K]);
      await c.step(async () => {
        const y = c.rank.linear(c.f32(x, [M, K]), wt);
        await c.expect(`linear with ${d} bytes M ${M} K ${K} N ${N}`, y, [M, N], ref.linear(x, w, undefined, M, K, N), REDUCTION);
      });
    });
  }

  single('linear with mismatched K throws at enqueue', async (c, r) => {
    const w = c.f32(r.uniform(5 * 8), [5, 8]);
    await c.step(async () => {
      const x = c.f32(r.uniform(3 * 7), [3, 7]);
      c.expectThrows('linear(x [3, 7], w [5, 8])', () => c.rank.linear(x, w), ['7', '8']);
    });
  });

  for (const d of dtypes) {
    const variants: Array<{ rowOffset?: number; scale?: number }> = [{}, { rowOffset: 4, scale: 2.5 }, { rowOffset: -2, scale: 1 }];
    for (const v of variants) {
      const label = v.rowOffset === undefined ? 'defaults' : `rowOffset ${v.rowOffset}, scale ${v.scale}`;
      single(`embedding ${d}: table [11, 13], 10 ids, ${label}`, async (c, r) => {
        const table = ref.roundToDtype(r.uniform(11 * 13, -2, 2), d);
        const ids = [0, 3, 10, 11, -1, 5, 100, 14, 2, 4];
        const tt = c.f32(table, [11, 13], d);
        await c.step(async () => {
          const idt = c.i32(ids);
          const y = v.rowOffset === undefined ? c.rank.embedding(tt, idt) : c.rank.embedding(tt, idt, v.rowOffset, v.scale);
          await c.expect(`embedding ${label} of ids ${ids.join(',')}`, y, [10, 13], ref.embedding(table, 11, 13, ids, v.rowOffset ?? 0, v.scale ?? 1), ELEMENTWISE);
        });
      });
    }
  }

  for (const dim of [14, 66]) {
    for (const kind of ['fairseq', 'marian'] as const) {
      single(`sinusoidal ${kind}: dim ${dim}, 8 positions`, async (c) => {
        const positions = [0, 1, 2, 7, 33, 99, 100, 5];
        await c.step(async () => {
          const y = c.rank.sinusoidal(c.i32(positions), dim, kind);
          await c.expect(`sinusoidal ${kind} dim ${dim} positions ${positions.join(',')}`, y, [8, dim], ref.sinusoidal(positions, dim, kind), { kind: 'max', rel: 2e-5 });
        });
      });
    }
  }
}

// ───────────────────────────── norms and elementwise kernels ─────────────────────────────

interface NormCase {
  rows: number;
  width: number;
  spec: NormSpec;
  weight?: boolean;
  bias?: boolean;
  groups?: number;
}

function normText(n: NormCase, dtype: StorageDtype): string {
  const parts = [`${n.spec.kind}${n.spec.plusOne ? ' (1 + w)' : ''}`, `eps ${n.spec.eps}`];
  if (n.weight) parts.push(`weight ${dtype}`);
  if (n.bias) parts.push('bias');
  return parts.join(', ');
}

async function checkNorm(c: Ctx, r: Random, n: NormCase, dtype: StorageDtype): Promise<void> {
  const groups = n.groups ?? 1;
  const cols = n.width * groups;
  const shift = n.spec.kind === 'layer' ? 3 : 0;
  const x = Float32Array.from(r.uniform(n.rows * cols, -2, 2), (v) => v + shift);
  const w = n.weight ? ref.roundToDtype(r.uniform(n.width, 0.5, 1.5), dtype) : undefined;
  const b = n.bias ? r.uniform(n.width, -0.5, 0.5) : undefined;
  const wt = w && c.f32(w, [n.width], dtype);
  const bt = b && c.f32(b, [n.width]);
  await c.step(async () => {
    const xt = c.f32(x, [n.rows, cols]);
    const y = n.groups === undefined ? c.rank.norm(xt, n.spec, wt, bt) : c.rank.groupNorm(xt, n.width, n.spec, wt, bt);
    const kernel = n.groups === undefined ? 'norm' : `groupNorm width ${n.width}`;
    await c.expect(`${kernel} ${normText(n, dtype)} of [${n.rows}, ${cols}]`, y, [n.rows, cols], ref.norm(x, n.width, n.spec, w, b), REDUCTION);
    await c.expect(`${kernel}: its input afterwards (must be untouched)`, xt, [n.rows, cols], x, EXACT);
  });
}

function normCases(single: Single, dtypes: StorageDtype[]): void {
  const norms: NormCase[] = [
    { rows: 3, width: 33, spec: { kind: 'rms', eps: 1e-6 }, weight: true },
    { rows: 1, width: 130, spec: { kind: 'rms', eps: 1e-6, plusOne: true }, weight: true },
    { rows: 5, width: 7, spec: { kind: 'rms', eps: 1e-5 } },
    { rows: 3, width: 33, spec: { kind: 'rms', eps: 1e-5 }, weight: true, bias: true },
    { rows: 5, width: 130, spec: { kind: 'layer', eps: 1e-5 }, weight: true, bias: true },
    { rows: 3, width: 7, spec: { kind: 'layer', eps: 1e-12 } },
    { rows: 1, width: 33, spec: { kind: 'layer', eps: 1e-5 }, weight: true },
  ];
  for (const n of norms) single(`norm ${normText(n, 'f32')}: [${n.rows}, ${n.width}]`, (c, r) => checkNorm(c, r, n, 'f32'));
  for (const d of dtypes) {
    if (d === 'f32') continue;
    const rms: NormCase = { rows: 3, width: 33, spec: { kind: 'rms', eps: 1e-6 }, weight: true };
    const layer: NormCase = { rows: 5, width: 130, spec: { kind: 'layer', eps: 1e-5 }, weight: true, bias: true };
    for (const n of [rms, layer]) single(`norm ${normText(n, d)}: [${n.rows}, ${n.width}]`, (c, r) => checkNorm(c, r, n, d));
  }
  const groups: NormCase[] = [
    { rows: 3, groups: 4, width: 7, spec: { kind: 'rms', eps: 1e-6 }, weight: true },
    { rows: 2, groups: 3, width: 33, spec: { kind: 'layer', eps: 1e-5 }, weight: true, bias: true },
    { rows: 1, groups: 1, width: 130, spec: { kind: 'rms', eps: 1e-6 } },
    { rows: 5, groups: 6, width: 5, spec: { kind: 'rms', eps: 1e-6, plusOne: true }, weight: true },
  ];
  for (const n of groups) single(`groupNorm ${normText(n, 'f32')}: [${n.rows}, ${n.groups} × ${n.width}]`, (c, r) => checkNorm(c, r, n, 'f32'));
}

const ACTIVATIONS: Activation[] = ['silu', 'gelu', 'gelu_tanh', 'relu', 'gelu_quick', 'identity'];

/** Random values in [-8, 8] with a few large ones and zero planted (overflow of exp, saturation). */
function activationInput(r: Random, n: number): Float32Array {
  const x = r.uniform(n, -8, 8);
  const special = [0, 30, -30, 20, -20, 88, -88, 1e-4, -1e-4];
  special.forEach((v, i) => {
    if (i * 3 < n) x[i * 3] = v;
  });
  return x;
}

function elementwiseCases(single: Single): void {
  // b: the whole shape, one row as a vector [C], or one row as a matrix [1, C] (BART's final_logits_bias).
  for (const [shape, broadcast] of [
    [[3, 33], 'none'],
    [[5, 7], 'vector'],
    [[1, 130], 'vector'],
    [[6, 9], 'row'],
  ] as Array<[[number, number], 'none' | 'vector' | 'row']>) {
    const [R, C] = shape;
    const bShape = broadcast === 'vector' ? [C] : broadcast === 'row' ? [1, C] : [R, C];
    for (const inPlace of [false, true]) {
      const kernel = inPlace ? 'addInPlace' : 'add';
      single(`${kernel}: [${R}, ${C}] + ${shapeText(bShape)}`, async (c, r) => {
        const a = r.uniform(R * C, -10, 10);
        const b = r.uniform(product(bShape), -10, 10);
        await c.step(async () => {
          const at = c.f32(a, [R, C]);
          const bt = c.f32(b, bShape);
          const y = inPlace ? c.rank.addInPlace(at, bt) : c.rank.add(at, bt);
          if (inPlace) c.assert(y === at, 'addInPlace must return its first argument');
          else c.assert(y !== at && y !== bt, 'add must return a new tensor');
          await c.expect(`${kernel} [${R}, ${C}] + ${shapeText(bShape)}`, y, [R, C], ref.add(a, b), ELEMENTWISE);
          if (!inPlace) await c.expect('add: its first input afterwards (must be untouched)', at, [R, C], a, EXACT);
          await c.expect(`${kernel}: its second input afterwards (must be untouched)`, bt, bShape, b, EXACT);
        });
      });
    }
  }

  for (const [R, C, s] of [
    [3, 33, 0.37],
    [1, 130, -2],
    [5, 7, 0],
  ] as Array<[number, number, number]>) {
    single(`scale: [${R}, ${C}] × ${s}`, async (c, r) => {
      const x = r.uniform(R * C, -10, 10);
      await c.step(async () => {
        const xt = c.f32(x, [R, C]);
        const y = c.rank.scale(xt, s);
        c.assert(y !== xt, 'scale must return a new tensor');
        await c.expect(`scale [${R}, ${C}] × ${s}`, y, [R, C], ref.scale(x, s), ELEMENTWISE);
        await c.expect('scale: its input afterwards (must be untouched)', xt, [R, C], x, EXACT);
      });
    });
  }

  single('clamp: [5, 33] to ±2.5, in place', async (c, r) => {
    const x = r.uniform(5 * 33, -5, 5);
    await c.step(async () => {
      const xt = c.f32(x, [5, 33]);
      const y = c.rank.clamp(xt, 2.5);
      c.assert(y === xt, 'clamp must return its argument (it works in place)');
      await c.expect('clamp [5, 33] to ±2.5', xt, [5, 33], ref.clamp(x, 2.5), EXACT);
    });
  });

  for (const kind of ACTIVATIONS) {
    single(`activation ${kind}: [3, 33]`, async (c, r) => {
      const x = activationInput(r, 3 * 33);
      await c.step(async () => {
        const xt = c.f32(x, [3, 33]);
        const y = c.rank.activation(xt, kind);
        c.assert(y !== xt, 'activation must return a new tensor');
        await c.expect(`activation ${kind} [3, 33]`, y, [3, 33], ref.activation(x, kind), ELEMENTWISE);
        await c.expect(`activation ${kind}: its input afterwards (must be untouched)`, xt, [3, 33], x, EXACT);
      });
    });
    single(`gated ${kind}: act(gate [5, 7]) ⊙ up [5, 7]`, async (c, r) => {
      const g = activationInput(r, 5 * 7);
      const u = r.uniform(5 * 7, -3, 3);
      await c.step(async () => {
        const y = c.rank.gated(c.f32(g, [5, 7]), c.f32(u, [5, 7]), kind);
        await c.expect(`gated ${kind} [5, 7]`, y, [5, 7], ref.gated(g, u, kind), ELEMENTWISE);
      });
    });
    single(`gated ${kind}: one [gate | up] tensor [3, 2 × 33]`, async (c, r) => {
      const gu = activationInput(r, 3 * 66);
      await c.step(async () => {
        const y = c.rank.gated(c.f32(gu, [3, 66]), undefined, kind);
        await c.expect(`gated ${kind} of [gate | up] [3, 66]`, y, [3, 33], ref.gatedFused(gu, 3, kind), ELEMENTWISE);
      });
    });
  }

  single('sigmoid: [3, 33]', async (c, r) => {
    const x = activationInput(r, 3 * 33);
    await c.step(async () => {
      const y = c.rank.sigmoid(c.f32(x, [3, 33]));
      await c.expect('sigmoid [3, 33]', y, [3, 33], ref.sigmoidAll(x), ELEMENTWISE);
    });
  });
}

// ───────────────────────────── columns, rows, rotary ─────────────────────────────

function layoutCases(single: Single): void {
  for (const [R, C, s, e] of [
    [3, 33, 5, 18],
    [1, 130, 0, 130],
    [5, 33, 32, 33],
    [2, 64, 7, 8],
  ] as Array<[number, number, number, number]>) {
    single(`sliceColumns: [${R}, ${C}] columns [${s}, ${e})`, async (c, r) => {
      const x = r.uniform(R * C);
      await c.step(async () => {
        const y = c.rank.sliceColumns(c.f32(x, [R, C]), s, e);
        await c.expect(`sliceColumns [${R}, ${C}] [${s}, ${e})`, y, [R, e - s], ref.gatherColumns(x, C, [[s, e]]), EXACT);
      });
    });
  }
  for (const [R, C, ranges] of [
    [3, 33, [[30, 33], [0, 4], [12, 19]]],
    [5, 130, [[0, 64], [64, 130]]],
    [1, 7, [[6, 7], [0, 1], [3, 5]]],
  ] as Array<[number, number, Array<[number, number]>]>) {
    const text = ranges.map(([s, e]) => `[${s}, ${e})`).join(' ');
    single(`gatherColumns: [${R}, ${C}] columns ${text}`, async (c, r) => {
      const x = r.uniform(R * C);
      const width = ranges.reduce((n, [s, e]) => n + e - s, 0);
      await c.step(async () => {
        const y = c.rank.gatherColumns(c.f32(x, [R, C]), ranges);
        await c.expect(`gatherColumns [${R}, ${C}] ${text}`, y, [R, width], ref.gatherColumns(x, C, ranges), EXACT);
      });
    });
  }
  for (const [R, C, rows] of [
    [5, 33, [4, 0, 0, 2]],
    [5, 7, [3]],
    [3, 130, [2, 1, 0, 1, 2, 0, 1]],
  ] as Array<[number, number, number[]]>) {
    single(`gatherRows: [${R}, ${C}] rows ${rows.join(',')}`, async (c, r) => {
      const x = r.uniform(R * C);
      await c.step(async () => {
        const y = c.rank.gatherRows(c.f32(x, [R, C]), c.i32(rows));
        await c.expect(`gatherRows [${R}, ${C}] rows ${rows.join(',')}`, y, [rows.length, C], ref.gatherRows(x, C, rows), EXACT);
      });
    });
  }
  for (const [R, C, rows] of [
    [5, 7, [3, 0, 3, 1]],
    [3, 33, [2]],
    [6, 130, [5, 4, 3, 2, 1, 0, 0]],
  ] as Array<[number, number, number[]]>) {
    single(`scatterAddRows: target [${R}, ${C}] += w · src [${rows.length}, ${C}] at rows ${rows.join(',')}`, async (c, r) => {
      const target = r.uniform(R * C);
      const src = r.uniform(rows.length * C);
      const weights = r.uniform(rows.length, 0, 1);
      await c.step(async () => {
        const tt = c.f32(target, [R, C]);
        const y = c.rank.scatterAddRows(tt, c.f32(src, [rows.length, C]), c.i32(rows), c.f32(weights, [rows.length]));
        c.assert(y === tt, 'scatterAddRows must return its target');
        await c.expect(`scatterAddRows rows ${rows.join(',')}`, tt, [R, C], ref.scatterAddRows(target, C, src, rows, weights), ELEMENTWISE);
      });
    });
  }

  const rotaries: Array<{ rows: number; heads: number; headDim: number; rotaryDim: number; style: 'half' | 'interleaved'; scale?: number }> = [
    { rows: 5, heads: 3, headDim: 10, rotaryDim: 10, style: 'half' },
    { rows: 3, heads: 2, headDim: 12, rotaryDim: 6, style: 'half' },
    { rows: 5, heads: 3, headDim: 10, rotaryDim: 10, style: 'interleaved' },
    { rows: 1, heads: 2, headDim: 14, rotaryDim: 6, style: 'interleaved', scale: 1.25 },
    { rows: 3, heads: 1, headDim: 66, rotaryDim: 66, style: 'half', scale: 0.9 },
  ];
  for (const o of rotaries) {
    const text = `${o.style}, ${o.rows} rows × ${o.heads} heads × headDim ${o.headDim}, rotaryDim ${o.rotaryDim}${o.scale ? `, scale ${o.scale}` : ''}`;
    single(`rotary ${text}`, async (c, r) => {
      const width = o.heads * o.headDim;
      const x = r.uniform(o.rows * width, -2, 2);
      const positions = Array.from({ length: o.rows }, (_, i) => (i === 0 ? 0 : r.int(1, 4096)));
      const invFreq = Float32Array.from({ length: o.rotaryDim / 2 }, (_, i) => 10000 ** ((-2 * i) / o.rotaryDim));
      const inv = c.f32(invFreq, [o.rotaryDim / 2]);
      const spec = { headDim: o.headDim, rotaryDim: o.rotaryDim, style: o.style, invFreq: inv, ...(o.scale !== undefined ? { scale: o.scale } : {}) };
      await c.step(async () => {
        const xt = c.f32(x, [o.rows, width]);
        const y = c.rank.rotary(xt, c.i32(positions), spec);
        c.assert(y === xt, 'rotary must return its argument (it works in place)');
        await c.expect(`rotary ${text} at positions ${positions.join(',')}`, xt, [o.rows, width], ref.rotary(x, positions, { ...spec, invFreq }), REDUCTION);
      });
      c.rank.free(inv);
    });
  }
}

// ───────────────────────────── argmax, topk, routing, MoE ─────────────────────────────

function selectionCases(single: Single): void {
  single('argmax: [3, 33] with ties and an all-negative row', async (c, r) => {
    const x = Float32Array.from({ length: 99 }, (_, i) => (i >= 66 ? -1 - r.int(0, 5) : r.int(0, 5)));
    await c.step(async () => {
      const y = c.rank.argmax(c.f32(x, [3, 33]));
      await c.expect('argmax [3, 33] (first index on ties)', y, [3], ref.argmax(x, 33), EXACT, 'i32');
    });
  });
  single('argmax: [2, 50001] (a vocabulary-sized row)', async (c, r) => {
    const C = 50_001;
    const x = r.uniform(2 * C, -10, 10);
    x[C - 1] = 20; // row 0: the last column
    x[C] = 30; // row 1: the first column, tied with column C - 2
    x[2 * C - 2] = 30;
    await c.step(async () => {
      const y = c.rank.argmax(c.f32(x, [2, C]));
      await c.expect(`argmax [2, ${C}]`, y, [2], ref.argmax(x, C), EXACT, 'i32');
    }, 4 * C);
  });
  single('argmax: [4, 1]', async (c, r) => {
    const x = r.uniform(4);
    await c.step(async () => {
      const y = c.rank.argmax(c.f32(x, [4, 1]));
      await c.expect('argmax [4, 1]', y, [4], [0, 0, 0, 0], EXACT, 'i32');
    });
  });

  const topks: Array<{ rows: number; cols: number; k: number; ties: boolean }> = [
    { rows: 3, cols: 33, k: 1, ties: true },
    { rows: 3, cols: 33, k: 4, ties: true },
    { rows: 3, cols: 33, k: 33, ties: true },
    { rows: 5, cols: 7, k: 7, ties: false },
    { rows: 1, cols: 32_001, k: 40, ties: false },
    { rows: 2, cols: 130, k: 5, ties: false },
  ];
  for (const o of topks) {
    single(`topk: [${o.rows}, ${o.cols}] k ${o.k}${o.ties ? ' with ties' : ''}`, async (c, r) => {
      const x = o.ties
        ? Float32Array.from({ length: o.rows * o.cols }, (_, i) => (i >= 2 * o.cols ? -1 - r.int(0, 5) : r.int(0, 5)))
        : Float32Array.from(Array.from({ length: o.rows }, () => r.permutation(o.cols).map((v) => v / 8 - o.cols / 16)).flat());
      const expected = ref.topk(x, o.cols, o.k);
      await c.step(async () => {
        const { values, indices } = c.rank.topk(c.f32(x, [o.rows, o.cols]), o.k);
        await c.expect(`topk [${o.rows}, ${o.cols}] k ${o.k}: indices (lower index first on ties)`, indices, [o.rows, o.k], expected.indices, EXACT, 'i32');
        await c.expect(`topk [${o.rows}, ${o.cols}] k ${o.k}: values`, values, [o.rows, o.k], expected.values, EXACT);
      }, 4 * o.rows * o.cols + (1 << 16));
    });
  }

  const routes: Array<{ rows: number; experts: number; topK: number; normalize: boolean }> = [
    { rows: 5, experts: 4, topK: 2, normalize: true },
    { rows: 3, experts: 8, topK: 3, normalize: false },
    { rows: 7, experts: 7, topK: 1, normalize: false },
    { rows: 5, experts: 60, topK: 4, normalize: true },
    { rows: 1, experts: 8, topK: 2, normalize: true },
  ];
  for (const o of routes) {
    single(`route: [${o.rows}, ${o.experts}] logits, top ${o.topK}${o.normalize ? ', renormalised' : ''}, one row of equal logits`, async (c, r) => {
      const logits = routerLogits(r, o.rows, o.experts);
      if (o.rows > 1) logits.fill(0.25, o.experts, 2 * o.experts); // row 1: a tie everywhere → experts 0, 1, …
      const expected = ref.route(logits, o.experts, o.topK, o.normalize);
      await c.step(async () => {
        const routing = c.rank.route(c.f32(logits, [o.rows, o.experts]), o.topK, o.normalize);
        await c.expect(`route top ${o.topK}: experts`, routing.experts, [o.rows, o.topK], expected.experts, EXACT, 'i32');
        await c.expect(`route top ${o.topK}: weights`, routing.weights, [o.rows, o.topK], expected.weights, PROBABILITY);
      });
    });
  }

  const moes: Array<{ rows: number; hidden: number; experts: number; topK: number; normalize: boolean; unused?: number }> = [
    { rows: 5, hidden: 7, experts: 4, topK: 2, normalize: true },
    { rows: 3, hidden: 33, experts: 8, topK: 3, normalize: false },
    { rows: 1, hidden: 33, experts: 8, topK: 2, normalize: true },
    { rows: 6, hidden: 7, experts: 5, topK: 2, normalize: true, unused: 3 },
  ];
  for (const o of moes) {
    const text = `${o.rows} rows × hidden ${o.hidden}, ${o.experts} experts, top ${o.topK}${o.normalize ? ' renormalised' : ''}${o.unused !== undefined ? `, expert ${o.unused} unused` : ''}`;
    single(`MoE: route + expertRows + linear + scatterAddRows = the dense mixture (${text})`, (c, r) => checkMoe(c, r, o));
  }
}

/** Router logits whose values in a row are at least 0.3 apart (no near-ties between f32 and f64). */
function routerLogits(r: Random, rows: number, experts: number): Float32Array {
  return Float32Array.from(Array.from({ length: rows }, () => r.permutation(experts).map((v) => v * 0.4 + 0.1 * r.next() - experts * 0.2)).flat());
}

async function checkMoe(c: Ctx, r: Random, o: { rows: number; hidden: number; experts: number; topK: number; normalize: boolean; unused?: number }): Promise<void> {
  const { rows, hidden: H, experts: E, topK } = o;
  const logits = routerLogits(r, rows, E);
  if (o.unused !== undefined) for (let i = 0; i < rows; i++) logits[i * E + o.unused] = -20;
  const x = r.uniform(rows * H);
  const W = Array.from({ length: E }, () => r.uniform(H * H, -0.5, 0.5));
  const routing = ref.route(logits, E, topK, o.normalize);
  const dense = new Float64Array(rows * H);
  for (let row = 0; row < rows; row++) {
    for (let k = 0; k < topK; k++) {
      const e = routing.experts[row * topK + k]!;
      const y = ref.linear(x.subarray(row * H, (row + 1) * H), W[e]!, undefined, 1, H, H);
      for (let i = 0; i < H; i++) dense[row * H + i]! += routing.weights[row * topK + k]! * y[i]!;
    }
  }
  const Wt = W.map((w) => c.f32(w, [H, H]));
  await c.step(async () => {
    const xt = c.f32(x, [rows, H]);
    const rt = c.rank.route(c.f32(logits, [rows, E]), topK, o.normalize);
    await c.expect('route: experts', rt.experts, [rows, topK], routing.experts, EXACT, 'i32');
    await c.expect('route: weights', rt.weights, [rows, topK], routing.weights, PROBABILITY);
    const target = c.f32(new Float32Array(rows * H), [rows, H]);
    for (let e = 0; e < E; e++) {
      const er = c.rank.expertRows(xt, rt, e);
      await checkExpertRows(c, er, x, H, routing, topK, e);
      const y = c.rank.linear(er.x, Wt[e]!);
      const back = c.rank.scatterAddRows(target, y, er.rows, er.weights);
      c.assert(back === target, 'scatterAddRows must return its target');
    }
    await c.expect('Σ_e scatterAddRows(weights · expert_e(expertRows(x, e)))', target, [rows, H], dense, REDUCTION);
  });
}

async function checkExpertRows(
  c: Ctx,
  er: { x: DeviceTensor; rows: DeviceTensor; weights: DeviceTensor },
  x: Float32Array,
  H: number,
  routing: { experts: Int32Array; weights: Float64Array },
  topK: number,
  e: number,
): Promise<void> {
  const what = `expertRows(expert ${e})`;
  const n = er.rows.shape[0] ?? -1;
  c.checkHandle(`${what}.rows`, er.rows, [n], 'i32');
  c.checkHandle(`${what}.weights`, er.weights, [n], 'f32');
  c.checkHandle(`${what}.x`, er.x, [n, H], 'f32');
  const rows = await c.rank.download(er.rows);
  const weights = await c.rank.download(er.weights);
  const xs = await c.rank.download(er.x);
  c.assert(rows.length === n && weights.length === n && xs.length === n * H, `${what}: downloads of ${rows.length} rows, ${weights.length} weights, ${xs.length} x values for n = ${n}`);
  const want = ref.expertRows(routing.experts, routing.weights, topK, e);
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    c.assert(Number.isInteger(row) && row >= 0 && row < x.length / H, `${what}: rows[${i}] = ${row} is not a row of x [${x.length / H}, ${H}]`);
    c.assert(!seen.has(row), `${what}: row ${row} appears twice`);
    seen.add(row);
    const at = want.rows.indexOf(row);
    const w = at < 0 ? 0 : want.weights[at]!;
    c.assert(Math.abs(weights[i]! - w) <= 1e-6, `${what}: row ${row} has weight ${fmt(weights[i]!)}, expected ${fmt(w)}${at < 0 ? ' (not routed to this expert: 0)' : ''}`);
    compare(`${what}: x of row ${row} (entry ${i})`, [H], xs.subarray(i * H, (i + 1) * H), x.subarray(row * H, (row + 1) * H), EXACT);
  }
  for (const row of want.rows) c.assert(seen.has(row), `${what}: row ${row} is routed to expert ${e} but missing (got rows ${Array.from(rows).join(',')})`);
}

// ───────────────────────────── attention ─────────────────────────────

interface AttentionConfig {
  heads: number;
  kvHeads: number;
  headDim: number;
  valueDim?: number;
  /** Default 1/√headDim. */
  scale?: number;
  alibi?: boolean;
  alibiScaled?: boolean;
  window?: number;
  softcap?: number;
  bias?: boolean;
  /** The bias is [batch, heads, rows, keys], one per sequence (default [heads, rows, keys]). */
  biasPerSequence?: boolean;
  /** About a third of the bias entries are -1e30 (masking their keys), and head 0's first row all of them. */
  biasMasks?: boolean;
  /** Relative-position tables (`AttentionSpec.relative`): a slice per head, or one shared by the heads. */
  relative?: { keys?: TableKind; queries?: TableKind; values?: TableKind };
  /** YOSO's expectation scoring with this many bits. */
  expectationBits?: number;
  /** Magnitude of q and k entries (default 1). */
  qk?: number;
}

type TableKind = 'per head' | 'shared';

/** Rows of every relative table; the index is clamp(key slot − query slot + span, 0, positions − 1). */
const RELATIVE_POSITIONS = 9;
const RELATIVE_SPAN = 4;

function attentionText(a: AttentionConfig): string {
  const parts = [`heads ${a.heads}/kv ${a.kvHeads}`, `headDim ${a.headDim}`];
  if (a.valueDim !== undefined && a.valueDim !== a.headDim) parts.push(`valueDim ${a.valueDim}`);
  if (a.alibi) parts.push(a.alibiScaled ? 'ALiBi (scaled)' : 'ALiBi');
  if (a.window !== undefined) parts.push(`window ${a.window}`);
  if (a.softcap !== undefined) parts.push(`softcap ${a.softcap}`);
  if (a.bias) parts.push(`bias${a.biasPerSequence ? ' per sequence [batch, heads, rows, keys]' : ''}${a.biasMasks ? ' with -1e30 entries' : ''}`);
  for (const name of ['keys', 'queries', 'values'] as const) {
    const kind = a.relative?.[name];
    if (kind) parts.push(`relative ${name} (${kind === 'per head' ? 'a table slice per head' : 'one table shared by the heads'})`);
  }
  if (a.expectationBits !== undefined) parts.push(`expectation scoring (bits ${a.expectationBits})`);
  return parts.join(', ');
}

/** Everything an attention run needs on the host and on the device. */
class AttentionRun {
  readonly valueDim: number;
  readonly kw: number;
  readonly vw: number;
  readonly slopes: Float32Array | undefined;
  /** Host copies of the relative tables ([RELATIVE_POSITIONS, width or heads·width]). */
  readonly tables: { keys?: Float32Array; queries?: Float32Array; values?: Float32Array } = {};
  readonly spec: AttentionSpec;

  constructor(
    readonly c: Ctx,
    readonly r: Random,
    readonly cfg: AttentionConfig,
    mask: 'causal' | 'bidirectional',
  ) {
    this.valueDim = cfg.valueDim ?? cfg.headDim;
    this.kw = cfg.kvHeads * cfg.headDim;
    this.vw = cfg.kvHeads * this.valueDim;
    this.slopes = cfg.alibi ? Float32Array.from({ length: cfg.heads }, (_, h) => 2 ** ((-8 * (h + 1)) / cfg.heads)) : undefined;
    const alibi = this.slopes && c.f32(this.slopes, [cfg.heads]);
    const relative: NonNullable<AttentionSpec['relative']> = {};
    for (const name of ['keys', 'queries', 'values'] as const) {
      const kind = cfg.relative?.[name];
      if (kind === undefined) continue;
      const width = (name === 'values' ? this.valueDim : cfg.headDim) * (kind === 'per head' ? cfg.heads : 1);
      const table = r.uniform(RELATIVE_POSITIONS * width);
      this.tables[name] = table;
      relative[name] = c.f32(table, [RELATIVE_POSITIONS, width]);
    }
    this.spec = {
      heads: cfg.heads,
      kvHeads: cfg.kvHeads,
      headDim: cfg.headDim,
      valueDim: this.valueDim,
      scale: cfg.scale ?? 1 / Math.sqrt(cfg.headDim),
      mask,
      ...(alibi ? { alibi, alibiScaled: cfg.alibiScaled ?? false } : {}),
      ...(cfg.window !== undefined ? { window: cfg.window } : {}),
      ...(cfg.softcap !== undefined ? { softcap: cfg.softcap } : {}),
      ...(cfg.relative ? { relative } : {}),
      ...(cfg.expectationBits !== undefined ? { scoring: { kind: 'expectation' as const, bits: cfg.expectationBits } } : {}),
    };
  }

  /** i32 [rows, keys]: key slot j of query row t (slot start + t) reads table row clamp(j − slot + span). */
  relativeIndex(rows: number, keys: number, start: number): Int32Array {
    return Int32Array.from({ length: rows * keys }, (_, i) => Math.min(RELATIVE_POSITIONS - 1, Math.max(0, (i % keys) - (start + Math.floor(i / keys)) + RELATIVE_SPAN)));
  }

  q(batch: number, rows: number): Float32Array {
    const m = this.cfg.qk ?? 1;
    return this.r.uniform(batch * rows * this.cfg.heads * this.cfg.headDim, -m, m);
  }

  k(batch: number, rows: number): Float32Array {
    const m = this.cfg.qk ?? 1;
    return this.r.uniform(batch * rows * this.kw, -m, m);
  }

  v(batch: number, rows: number): Float32Array {
    return this.r.uniform(batch * rows * this.vw);
  }

  bias(rows: number, keys: number, batch: number): Float32Array | undefined {
    if (!this.cfg.bias) return undefined;
    const bias = this.r.uniform((this.cfg.biasPerSequence ? batch : 1) * this.cfg.heads * rows * keys, -2, 2);
    if (this.cfg.biasMasks) {
      for (let i = 0; i < bias.length; i++) if (this.r.next() < 1 / 3) bias[i] = -1e30;
      bias.fill(-1e30, 0, keys); // head 0, row 0 (of sequence 0): no key left, so zeros
    }
    return bias;
  }

  /** The device step inputs. */
  step(batch: number, rows: number, start: number, mask: Int32Array, positions: Int32Array, bias: Float32Array | undefined): AttentionStep {
    const keys = mask.length / batch;
    return {
      batch,
      rows,
      start,
      keyMask: this.c.i32(mask, [batch, keys]),
      ...(this.slopes ? { keyPositions: this.c.i32(positions, [batch, keys]) } : {}),
      ...(bias ? { bias: this.c.f32(bias, this.cfg.biasPerSequence ? [batch, this.cfg.heads, rows, keys] : [this.cfg.heads, rows, keys]) } : {}),
      ...(this.cfg.relative ? { relativeIndex: this.c.i32(this.relativeIndex(rows, keys, start), [rows, keys]) } : {}),
    };
  }

  expected(args: { q: Float32Array; kCache: Float32Array; vCache: Float32Array; slots: number; batch: number; rows: number; start: number; mask: Int32Array; positions: Int32Array; bias: Float32Array | undefined }): Float64Array {
    const keys = args.mask.length / args.batch;
    return ref.attention({
      q: args.q,
      kCache: args.kCache,
      vCache: args.vCache,
      slots: args.slots,
      batch: args.batch,
      rows: args.rows,
      start: args.start,
      keys,
      keyMask: args.mask,
      keyPositions: args.positions,
      ...(args.bias ? { bias: args.bias } : {}),
      ...(this.slopes ? { alibi: this.slopes, alibiScaled: this.cfg.alibiScaled ?? false } : {}),
      ...(this.cfg.relative ? { relative: { positions: RELATIVE_POSITIONS, index: this.relativeIndex(args.rows, keys, args.start), ...this.tables } } : {}),
      ...(this.cfg.expectationBits !== undefined ? { expectation: { bits: this.cfg.expectationBits } } : {}),
      heads: this.cfg.heads,
      kvHeads: this.cfg.kvHeads,
      headDim: this.cfg.headDim,
      valueDim: this.valueDim,
      scale: this.spec.scale,
      mask: this.spec.mask,
      ...(this.cfg.window !== undefined ? { window: this.cfg.window } : {}),
      ...(this.cfg.softcap !== undefined ? { softcap: this.cfg.softcap } : {}),
    });
  }

  checkCache(cache: { batch: number; length: number; dtype: StorageDtype }, batch: number, length: number, dtype: StorageDtype, when: string): void {
    this.c.assert(cache.batch === batch, `KV cache ${when}: batch ${cache.batch}, expected ${batch}`);
    this.c.assert(cache.dtype === dtype, `KV cache ${when}: dtype ${cache.dtype}, expected ${dtype}`);
    this.c.assert(cache.length === length, `KV cache ${when}: length ${cache.length}, expected ${length} (slots written)`);
  }
}

/**
 * Causal self-attention over successive calls (prefill, then decode rows, …), appending to one cache.
 * Sequence b is left-padded by padding[b] slots (masked keys; its first queries see nothing).
 */
async function causalSelf(c: Ctx, r: Random, cfg: AttentionConfig, dtype: StorageDtype, batch: number, calls: number[], padding: number[]): Promise<void> {
  const a = new AttentionRun(c, r, cfg, 'causal');
  const total = calls.reduce((x, y) => x + y, 0);
  const kCache = new Float32Array(batch * total * a.kw);
  const vCache = new Float32Array(batch * total * a.vw);
  const cache = c.rank.createKvCache(batch, cfg.kvHeads, cfg.headDim, a.valueDim, dtype);
  a.checkCache(cache, batch, 0, dtype, 'when created');
  let start = 0;
  for (const [call, rows] of calls.entries()) {
    const keys = start + rows;
    const q = a.q(batch, rows);
    const k = a.k(batch, rows);
    const v = a.v(batch, rows);
    const kr = ref.roundToDtype(k, dtype);
    const vr = ref.roundToDtype(v, dtype);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < rows; t++) {
        kCache.set(kr.subarray((b * rows + t) * a.kw, (b * rows + t + 1) * a.kw), (b * total + start + t) * a.kw);
        vCache.set(vr.subarray((b * rows + t) * a.vw, (b * rows + t + 1) * a.vw), (b * total + start + t) * a.vw);
      }
    }
    const mask = Int32Array.from({ length: batch * keys }, (_, i) => (i % keys >= padding[Math.floor(i / keys)]! ? 1 : 0));
    const positions = Int32Array.from({ length: batch * keys }, (_, i) => Math.max(0, (i % keys) - padding[Math.floor(i / keys)]!));
    const bias = a.bias(rows, keys, batch);
    const expected = a.expected({ q, kCache, vCache, slots: total, batch, rows, start, mask, positions, bias });
    await c.step(async () => {
      const step = a.step(batch, rows, start, mask, positions, bias);
      const y = c.rank.attention(c.f32(q, [batch * rows, cfg.heads * cfg.headDim]), c.f32(k, [batch * rows, a.kw]), c.f32(v, [batch * rows, a.vw]), cache, step, a.spec);
      await c.expect(`causal attention ${dtype} cache, call ${call + 1} of ${calls.length} (start ${start}, rows ${rows}, keys ${keys}, batch ${batch})`, y, [batch * rows, cfg.heads * a.valueDim], expected, ATTENTION);
    });
    a.checkCache(cache, batch, keys, dtype, `after call ${call + 1}`);
    start = keys;
  }
  c.rank.freeKvCache(cache);
}

/** Bidirectional self-attention (an encoder) with right padding: sequence b holds lengths[b] tokens. */
async function bidirectionalSelf(c: Ctx, r: Random, cfg: AttentionConfig, dtype: StorageDtype, rows: number, lengths: number[]): Promise<void> {
  const batch = lengths.length;
  const a = new AttentionRun(c, r, cfg, 'bidirectional');
  const q = a.q(batch, rows);
  const k = a.k(batch, rows);
  const v = a.v(batch, rows);
  const mask = Int32Array.from({ length: batch * rows }, (_, i) => (i % rows < lengths[Math.floor(i / rows)]! ? 1 : 0));
  const positions = Int32Array.from({ length: batch * rows }, (_, i) => i % rows);
  const bias = a.bias(rows, rows, batch);
  const expected = a.expected({ q, kCache: ref.roundToDtype(k, dtype), vCache: ref.roundToDtype(v, dtype), slots: rows, batch, rows, start: 0, mask, positions, bias });
  const cache = c.rank.createKvCache(batch, cfg.kvHeads, cfg.headDim, a.valueDim, dtype);
  await c.step(async () => {
    const y = c.rank.attention(c.f32(q, [batch * rows, cfg.heads * cfg.headDim]), c.f32(k, [batch * rows, a.kw]), c.f32(v, [batch * rows, a.vw]), cache, a.step(batch, rows, 0, mask, positions, bias), a.spec);
    await c.expect(`bidirectional attention ${dtype} cache, rows ${rows}, lengths ${lengths.join(',')}`, y, [batch * rows, cfg.heads * a.valueDim], expected, ATTENTION);
  });
  a.checkCache(cache, batch, rows, dtype, 'after the call');
  c.rank.freeKvCache(cache);
}

/**
 * Cross-attention: fillKvCache writes a source of `source` slots (sequence b holds lengths[b]); then
 * query calls of `calls` rows read it without appending; the last call repeats the first call's queries
 * and must give the first call's output (the cache is unchanged by reading).
 */
async function crossAttention(c: Ctx, r: Random, cfg: AttentionConfig, dtype: StorageDtype, source: number, lengths: number[], calls: number[]): Promise<void> {
  const batch = lengths.length;
  const a = new AttentionRun(c, r, cfg, 'bidirectional');
  const k = a.k(batch, source);
  const v = a.v(batch, source);
  const kCache = ref.roundToDtype(k, dtype);
  const vCache = ref.roundToDtype(v, dtype);
  const mask = Int32Array.from({ length: batch * source }, (_, i) => (i % source < lengths[Math.floor(i / source)]! ? 1 : 0));
  const positions = Int32Array.from({ length: batch * source }, (_, i) => i % source);
  const cache = c.rank.createKvCache(batch, cfg.kvHeads, cfg.headDim, a.valueDim, dtype);
  const queries = calls.map((rows) => a.q(batch, rows));
  queries.push(queries[0]!);
  const rowsOf = [...calls, calls[0]!];
  const biases = rowsOf.map((rows) => a.bias(rows, source, batch));
  biases[biases.length - 1] = biases[0];
  let start = 0;
  for (const [call, q] of queries.entries()) {
    const rows = rowsOf[call]!;
    const bias = biases[call];
    const expected = a.expected({ q, kCache, vCache, slots: source, batch, rows, start, mask, positions, bias });
    await c.step(async () => {
      if (call === 0) {
        c.rank.fillKvCache(cache, c.f32(k, [batch * source, a.kw]), c.f32(v, [batch * source, a.vw]), batch, source);
      }
      const y = c.rank.attention(c.f32(q, [batch * rows, cfg.heads * cfg.headDim]), undefined, undefined, cache, a.step(batch, rows, start, mask, positions, bias), a.spec);
      const label = call === queries.length - 1 ? 'the first call repeated' : `call ${call + 1}`;
      await c.expect(`cross-attention ${dtype} cache, source ${source} (lengths ${lengths.join(',')}), ${label} (start ${start}, rows ${rows})`, y, [batch * rows, cfg.heads * a.valueDim], expected, ATTENTION);
    });
    a.checkCache(cache, batch, source, dtype, `after call ${call + 1} (reading must not change it)`);
    start = call === queries.length - 2 ? 0 : start + rows;
  }
  c.rank.freeKvCache(cache);
}

/**
 * reorderKvCache, as beam search uses it: a causal cache of `batch` sequences (left-padded by
 * padding[b]) is filled by a prefill, then before each decode call it is reordered by the next order
 * (repeats, drops, cycles, the identity) and the call's output is checked against the reference over
 * the reordered host cache and mask; the last call appends past the capacity, so the cache grows after
 * reordering. Every order is uploaded inside the step that reorders (a step temporary).
 */
async function reorderedSelf(c: Ctx, r: Random, cfg: AttentionConfig, dtype: StorageDtype, padding: number[], orders: number[][], lastRows: number): Promise<void> {
  const batch = padding.length;
  const a = new AttentionRun(c, r, cfg, 'causal');
  const calls = [5, ...orders.slice(1).map(() => 1), lastRows];
  const total = calls.reduce((x, y) => x + y, 0);
  let kCache: Float64Array = new Float64Array(batch * total * a.kw);
  let vCache: Float64Array = new Float64Array(batch * total * a.vw);
  let mask = new Int32Array(batch * total);
  for (let b = 0; b < batch; b++) for (let j = 0; j < total; j++) mask[b * total + j] = j >= padding[b]! ? 1 : 0;
  const positions = new Int32Array(batch * total);
  for (let b = 0; b < batch; b++) for (let j = 0; j < total; j++) positions[b * total + j] = Math.max(0, j - padding[b]!);
  const cache = c.rank.createKvCache(batch, cfg.kvHeads, cfg.headDim, a.valueDim, dtype);
  let start = 0;
  for (const [call, rows] of calls.entries()) {
    const order = call === 0 ? undefined : orders[call - 1]!;
    if (order !== undefined) {
      kCache = ref.reorderBatch(kCache, batch, order);
      vCache = ref.reorderBatch(vCache, batch, order);
      mask = Int32Array.from(ref.reorderBatch(mask, batch, order));
    }
    const keys = start + rows;
    const q = a.q(batch, rows);
    const k = a.k(batch, rows);
    const v = a.v(batch, rows);
    const kr = ref.roundToDtype(k, dtype);
    const vr = ref.roundToDtype(v, dtype);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < rows; t++) {
        kCache.set(kr.subarray((b * rows + t) * a.kw, (b * rows + t + 1) * a.kw), (b * total + start + t) * a.kw);
        vCache.set(vr.subarray((b * rows + t) * a.vw, (b * rows + t + 1) * a.vw), (b * total + start + t) * a.vw);
      }
    }
    const visibleMask = Int32Array.from({ length: batch * keys }, (_, i) => mask[Math.floor(i / keys) * total + (i % keys)]!);
    const visiblePositions = Int32Array.from({ length: batch * keys }, (_, i) => positions[Math.floor(i / keys) * total + (i % keys)]!);
    const expected = a.expected({ q, kCache: Float32Array.from(kCache), vCache: Float32Array.from(vCache), slots: total, batch, rows, start, mask: visibleMask, positions: visiblePositions, bias: undefined });
    await c.step(async () => {
      if (order !== undefined) c.rank.reorderKvCache(cache, c.i32(order));
      a.checkCache(cache, batch, start, dtype, `after reordering by [${order?.join(', ') ?? ''}] (batch and length are kept)`);
      const y = c.rank.attention(c.f32(q, [batch * rows, cfg.heads * cfg.headDim]), c.f32(k, [batch * rows, a.kw]), c.f32(v, [batch * rows, a.vw]), cache, a.step(batch, rows, start, visibleMask, visiblePositions, undefined), a.spec);
      const what = order === undefined ? `prefill ${rows}` : `after reorderKvCache([${order.join(', ')}]), ${rows} row${rows === 1 ? '' : 's'} at slot ${start}`;
      await c.expect(`reordered causal attention ${dtype} cache, call ${call + 1} of ${calls.length}: ${what}`, y, [batch * rows, cfg.heads * a.valueDim], expected, ATTENTION);
    });
    a.checkCache(cache, batch, keys, dtype, `after call ${call + 1}`);
    start = keys;
  }
  c.rank.freeKvCache(cache);
}

/** A cross-attention source filled once, reordered (a beam following another source), then read. */
async function reorderedCross(c: Ctx, r: Random, cfg: AttentionConfig, dtype: StorageDtype, source: number, lengths: number[], order: number[]): Promise<void> {
  const batch = lengths.length;
  const a = new AttentionRun(c, r, cfg, 'bidirectional');
  const k = a.k(batch, source);
  const v = a.v(batch, source);
  const kCache = ref.reorderBatch(ref.roundToDtype(k, dtype), batch, order);
  const vCache = ref.reorderBatch(ref.roundToDtype(v, dtype), batch, order);
  const mask = Int32Array.from({ length: batch * source }, (_, i) => (i % source < lengths[order[Math.floor(i / source)]!]! ? 1 : 0));
  const positions = Int32Array.from({ length: batch * source }, (_, i) => i % source);
  const cache = c.rank.createKvCache(batch, cfg.kvHeads, cfg.headDim, a.valueDim, dtype);
  await c.step(async () => {
    c.rank.fillKvCache(cache, c.f32(k, [batch * source, a.kw]), c.f32(v, [batch * source, a.vw]), batch, source);
  });
  const q = a.q(batch, 2);
  const expected = a.expected({ q, kCache: Float32Array.from(kCache), vCache: Float32Array.from(vCache), slots: source, batch, rows: 2, start: 0, mask, positions, bias: undefined });
  await c.step(async () => {
    c.rank.reorderKvCache(cache, c.i32(order));
    const y = c.rank.attention(c.f32(q, [batch * 2, cfg.heads * cfg.headDim]), undefined, undefined, cache, a.step(batch, 2, 0, mask, positions, undefined), a.spec);
    await c.expect(`cross-attention ${dtype} cache after reorderKvCache([${order.join(', ')}]), source ${source} (lengths ${lengths.join(',')})`, y, [batch * 2, cfg.heads * a.valueDim], expected, ATTENTION);
  });
  a.checkCache(cache, batch, source, dtype, 'after reordering');
  c.rank.freeKvCache(cache);
}

function reorderCases(single: Single, kvDtypes: StorageDtype[]): void {
  const cfg: AttentionConfig = { heads: 6, kvHeads: 2, headDim: 7, valueDim: 5 };
  // Repeats and drops, a 3-cycle (in place, every row moves), the identity, a swap; then 70 rows past the capacity.
  const orders = [
    [2, 0, 0],
    [1, 2, 0],
    [0, 1, 2],
    [2, 2, 1],
    [1, 0, 2],
  ];
  for (const d of kvDtypes) {
    single(`reorderKvCache (${d}): causal cache of 3 (left-padded 0, 1, 2) reordered by [2,0,0], [1,2,0], identity, [2,2,1], [1,0,2] between decodes, then grown by 70 rows`, (c, r) =>
      reorderedSelf(c, r, cfg, d, [0, 1, 2], orders, 70),
    );
    single(`reorderKvCache (${d}): a cross-attention source of 3 sequences (lengths 7, 4, 2) reordered by [1,1,0]`, (c, r) => reorderedCross(c, r, cfg, d, 7, [7, 4, 2], [1, 1, 0]));
  }
  const main: StorageDtype = kvDtypes.includes('f32') ? 'f32' : kvDtypes[0]!;
  single('reorderKvCache of an empty cache changes nothing; a prefill appended afterwards reads back', async (c, r) => {
    const a = new AttentionRun(c, r, { heads: 2, kvHeads: 1, headDim: 4 }, 'causal');
    const cache = c.rank.createKvCache(2, 1, 4, 4, main);
    await c.step(async () => c.rank.reorderKvCache(cache, c.i32([1, 1])));
    a.checkCache(cache, 2, 0, main, 'empty, after reorderKvCache([1, 1])');
    const q = a.q(2, 3);
    const k = a.k(2, 3);
    const v = a.v(2, 3);
    const mask = new Int32Array(6).fill(1);
    const positions = Int32Array.from({ length: 6 }, (_, i) => i % 3);
    const expected = a.expected({ q, kCache: ref.roundToDtype(k, main), vCache: ref.roundToDtype(v, main), slots: 3, batch: 2, rows: 3, start: 0, mask, positions, bias: undefined });
    await c.step(async () => {
      const y = c.rank.attention(c.f32(q, [6, 8]), c.f32(k, [6, 4]), c.f32(v, [6, 4]), cache, a.step(2, 3, 0, mask, positions, undefined), a.spec);
      await c.expect('causal attention after reordering an empty cache', y, [6, 8], expected, ATTENTION);
    });
    c.rank.freeKvCache(cache);
  });
  single('reorderKvCache with an order of the wrong length or a source out of range throws at enqueue', async (c) => {
    const cache = c.rank.createKvCache(3, 1, 4, 4, main);
    await c.step(async () => {
      c.expectThrows('reorderKvCache(batch 3, order [0, 1])', () => c.rank.reorderKvCache(cache, c.i32([0, 1])));
      c.expectThrows('reorderKvCache(batch 3, order [0, 1, 3])', () => c.rank.reorderKvCache(cache, c.i32([0, 1, 3])));
      c.expectThrows('reorderKvCache(batch 3, order [0, -1, 2])', () => c.rank.reorderKvCache(cache, c.i32([0, -1, 2])));
    });
    c.rank.freeKvCache(cache);
  });
}

function attentionCases(single: Single, kvDtypes: StorageDtype[], backendKv: readonly StorageDtype[]): void {
  // The main cases use an f32 cache when the backend has one; the other cache dtypes get their own cases.
  const main: StorageDtype = kvDtypes.includes('f32') ? 'f32' : kvDtypes[0]!;
  const cacheText = main === 'f32' ? '' : ` (${main} KV cache)`;
  const causal: AttentionConfig[] = [
    { heads: 3, kvHeads: 3, headDim: 5 },
    { heads: 6, kvHeads: 2, headDim: 7 },
    { heads: 5, kvHeads: 1, headDim: 9, valueDim: 6 },
    { heads: 4, kvHeads: 4, headDim: 6, alibi: true },
    { heads: 4, kvHeads: 2, headDim: 6, alibi: true, alibiScaled: true },
    { heads: 4, kvHeads: 2, headDim: 7, window: 3 },
    { heads: 2, kvHeads: 1, headDim: 8, softcap: 2, qk: 3 },
    { heads: 3, kvHeads: 3, headDim: 5, bias: true, scale: 1 },
    { heads: 6, kvHeads: 3, headDim: 5, alibi: true, window: 4, softcap: 3, bias: true, qk: 2 },
  ];
  for (const cfg of causal) {
    single(`attention causal self, prefill 6 + decode 1 + decode 1, batch 2 (one left-padded): ${attentionText(cfg)}${cacheText}`, (c, r) => causalSelf(c, r, cfg, main, 2, [6, 1, 1], [0, 2]));
  }
  const bidirectional: AttentionConfig[] = [
    { heads: 3, kvHeads: 3, headDim: 5 },
    { heads: 6, kvHeads: 2, headDim: 7 },
    { heads: 6, kvHeads: 2, headDim: 7, bias: true, scale: 1 },
    { heads: 5, kvHeads: 1, headDim: 9, valueDim: 6, softcap: 2, qk: 3 },
    { heads: 4, kvHeads: 2, headDim: 6, alibi: true },
  ];
  for (const cfg of bidirectional) {
    single(`attention bidirectional, rows 5, batch 3 with lengths 5, 3, 0: ${attentionText(cfg)}${cacheText}`, (c, r) => bidirectionalSelf(c, r, cfg, main, 5, [5, 3, 0]));
  }
  const cross: AttentionConfig[] = [
    { heads: 6, kvHeads: 2, headDim: 7 },
    { heads: 3, kvHeads: 3, headDim: 5, bias: true, scale: 1 },
    { heads: 5, kvHeads: 1, headDim: 9, valueDim: 6 },
  ];
  for (const cfg of cross) {
    single(`attention cross (fillKvCache source 7, lengths 7, 4), queries 3 + 1 + 1: ${attentionText(cfg)}${cacheText}`, (c, r) => crossAttention(c, r, cfg, main, 7, [7, 4], [3, 1, 1]));
  }
  for (const d of kvDtypes) {
    if (d === main) continue;
    const gqa: AttentionConfig = { heads: 6, kvHeads: 2, headDim: 7 };
    single(`attention causal self with a ${d} KV cache: ${attentionText(gqa)}`, (c, r) => causalSelf(c, r, gqa, d, 2, [6, 1, 1], [0, 2]));
    single(`attention bidirectional with a ${d} KV cache: ${attentionText(gqa)}`, (c, r) => bidirectionalSelf(c, r, gqa, d, 5, [5, 3, 0]));
    single(`attention cross with a ${d} KV cache: ${attentionText(gqa)}`, (c, r) => crossAttention(c, r, gqa, d, 7, [7, 4], [3, 1]));
  }
  for (const d of kvDtypes) {
    const cfg: AttentionConfig = { heads: 4, kvHeads: 2, headDim: 5 };
    const calls = [3, ...Array<number>(40).fill(1), 150, 1, 2];
    single(`KV cache growth (${d}): prefill 3, 40 decodes, a 150-row chunk, 1, 2 — every call checked`, (c, r) => causalSelf(c, r, cfg, d, 2, calls, [0, 1]));
  }

  for (const d of ['f32', 'f16', 'bf16'] as const) {
    if (backendKv.includes(d)) continue;
    single(`createKvCache in ${d}, which the backend's kvDtypes lack, throws`, async (c) => {
      c.expectThrows(`createKvCache(1, 2, 4, 4, '${d}')`, () => c.rank.createKvCache(1, 2, 4, 4, d));
    });
  }

  single('attention with heads not a multiple of kvHeads throws at enqueue', async (c, r) => {
    const cache = c.rank.createKvCache(1, 2, 4, 4, main);
    await c.step(async () => {
      const q = c.f32(r.uniform(5 * 4), [1, 5 * 4]);
      const k = c.f32(r.uniform(2 * 4), [1, 2 * 4]);
      const v = c.f32(r.uniform(2 * 4), [1, 2 * 4]);
      const spec: AttentionSpec = { heads: 5, kvHeads: 2, headDim: 4, valueDim: 4, scale: 0.5, mask: 'causal' };
      c.expectThrows('attention(heads 5, kvHeads 2)', () => c.rank.attention(q, k, v, cache, { batch: 1, rows: 1, start: 0, keyMask: c.i32([1], [1, 1]) }, spec));
    });
    c.rank.freeKvCache(cache);
  });
}

/**
 * Interface version 3: relative-position tables (each of keys, queries and values, a slice per head
 * or shared, GQA and MHA, causal over a prefill, a chunk at start > 0 and a decode, bidirectional with
 * padding, cross), per-sequence and -1e30-masking biases, YOSO's expectation scoring, and the shape
 * errors of the new inputs.
 */
function attentionV3Cases(single: Single, main: StorageDtype, cacheText: string): void {
  const relativeShapes: AttentionConfig[] = [];
  for (const name of ['keys', 'queries', 'values'] as const) {
    for (const kind of ['per head', 'shared'] as const) {
      relativeShapes.push({ heads: 4, kvHeads: 2, headDim: 6, relative: { [name]: kind } }); // GQA
      relativeShapes.push({ heads: 3, kvHeads: 3, headDim: 5, valueDim: name === 'values' ? 7 : 5, relative: { [name]: kind } }); // MHA
    }
  }
  const all: AttentionConfig = { heads: 4, kvHeads: 2, headDim: 6, valueDim: 5, relative: { keys: 'per head', queries: 'shared', values: 'per head' } };
  const combined: AttentionConfig[] = [
    all,
    // the relative terms come before ALiBi (inside its scaled sum), the soft cap and the bias
    { ...all, alibi: true, alibiScaled: true },
    { heads: 6, kvHeads: 3, headDim: 5, relative: { keys: 'shared', queries: 'per head', values: 'shared' }, alibi: true, softcap: 3, bias: true, qk: 2 },
  ];
  for (const cfg of [...relativeShapes, ...combined]) {
    single(`attention relative, causal self, prefill 4 + chunk 3 at start 4 + decode 1, batch 2 (one left-padded): ${attentionText(cfg)}${cacheText}`, (c, r) => causalSelf(c, r, cfg, main, 2, [4, 3, 1], [0, 2]));
    single(`attention relative, bidirectional, rows 5, batch 3 with lengths 5, 3, 0: ${attentionText(cfg)}${cacheText}`, (c, r) => bidirectionalSelf(c, r, cfg, main, 5, [5, 3, 0]));
  }
  single(`attention relative, cross (fillKvCache source 7, lengths 7, 4), queries 3 + 1: ${attentionText(all)}${cacheText}`, (c, r) => crossAttention(c, r, all, main, 7, [7, 4], [3, 1]));

  const biases: AttentionConfig[] = [
    { heads: 4, kvHeads: 2, headDim: 6, bias: true, biasPerSequence: true },
    { heads: 4, kvHeads: 2, headDim: 6, bias: true, biasMasks: true },
    { heads: 3, kvHeads: 3, headDim: 5, bias: true, biasPerSequence: true, biasMasks: true, softcap: 2 },
  ];
  for (const cfg of biases) {
    single(`attention bias, causal self, prefill 4 + chunk 3 at start 4 + decode 1, batch 2 (one left-padded): ${attentionText(cfg)}${cacheText}`, (c, r) => causalSelf(c, r, cfg, main, 2, [4, 3, 1], [0, 2]));
    single(`attention bias, bidirectional, rows 5, batch 3 with lengths 5, 3, 0: ${attentionText(cfg)}${cacheText}`, (c, r) => bidirectionalSelf(c, r, cfg, main, 5, [5, 3, 0]));
  }
  const perSequence = biases[0]!;
  single(`attention bias, cross (fillKvCache source 7, lengths 7, 4), queries 3 + 1: ${attentionText(perSequence)}${cacheText}`, (c, r) => crossAttention(c, r, perSequence, main, 7, [7, 4], [3, 1]));

  const expectation: AttentionConfig[] = [
    { heads: 4, kvHeads: 2, headDim: 6, expectationBits: 8 },
    { heads: 3, kvHeads: 3, headDim: 5, valueDim: 7, expectationBits: 1, qk: 3 },
  ];
  for (const cfg of expectation) {
    single(`attention expectation, bidirectional, rows 5, batch 3 with lengths 5, 3, 0 (padding in keyMask): ${attentionText(cfg)}${cacheText}`, (c, r) => bidirectionalSelf(c, r, cfg, main, 5, [5, 3, 0]));
    single(`attention expectation, causal self, prefill 4 + chunk 3 at start 4 + decode 1, batch 2 (one left-padded): ${attentionText(cfg)}${cacheText}`, (c, r) => causalSelf(c, r, cfg, main, 2, [4, 3, 1], [0, 2]));
  }

  /** One causal call of 2 rows over 2 keys (heads 4, kv 2, headDim 4) with `spec` and `step` changed. */
  const badCall = (c: Ctx, r: Random, spec: Partial<AttentionSpec>, step: Partial<AttentionStep>) => {
    const cache = c.rank.createKvCache(1, 2, 4, 4, main);
    const q = c.f32(r.uniform(2 * 16), [2, 16]);
    const k = c.f32(r.uniform(2 * 8), [2, 8]);
    const v = c.f32(r.uniform(2 * 8), [2, 8]);
    const full: AttentionSpec = { heads: 4, kvHeads: 2, headDim: 4, valueDim: 4, scale: 0.5, mask: 'causal', ...spec };
    return () => c.rank.attention(q, k, v, cache, { batch: 1, rows: 2, start: 0, keyMask: c.i32([1, 1], [1, 2]), ...step }, full);
  };
  single('attention with a relative index not [rows, keys] throws at enqueue', async (c, r) => {
    await c.step(async () => {
      const keys = c.f32(r.uniform(9 * 4), [9, 4]);
      c.expectThrows('attention(relativeIndex [4] for rows 2, keys 2)', badCall(c, r, { relative: { keys } }, { relativeIndex: c.i32([0, 1, 2, 3], [4]) }));
      c.expectThrows('attention(relativeIndex [2, 3] for rows 2, keys 2)', badCall(c, r, { relative: { keys } }, { relativeIndex: c.i32([0, 1, 2, 3, 4, 5], [2, 3]) }));
      c.expectThrows('attention(relativeIndex [1, 2] for rows 2, keys 2)', badCall(c, r, { relative: { keys } }, { relativeIndex: c.i32([0, 1], [1, 2]) }));
    });
  });
  single('attention with a relative table neither [positions, heads·width] nor [positions, width] throws at enqueue', async (c, r) => {
    await c.step(async () => {
      const index = () => ({ relativeIndex: c.i32([0, 1, 2, 3], [2, 2]) });
      c.expectThrows('attention(relative keys [9, 8]: heads 4 × headDim 4 is 16)', badCall(c, r, { relative: { keys: c.f32(r.uniform(9 * 8), [9, 8]) } }, index()));
      c.expectThrows('attention(relative queries [9, 12])', badCall(c, r, { relative: { queries: c.f32(r.uniform(9 * 12), [9, 12]) } }, index()));
      c.expectThrows('attention(relative values [9, 5]: valueDim 4)', badCall(c, r, { relative: { values: c.f32(r.uniform(9 * 5), [9, 5]) } }, index()));
      c.expectThrows('attention(relative keys [36]: not 2-D)', badCall(c, r, { relative: { keys: c.f32(r.uniform(36), [36]) } }, index()));
    });
  });
  single('attention with relative tables but no relativeIndex throws at enqueue', async (c, r) => {
    await c.step(async () => {
      c.expectThrows('attention(relative keys [9, 4], no relativeIndex)', badCall(c, r, { relative: { keys: c.f32(r.uniform(9 * 4), [9, 4]) } }, {}));
    });
  });
  single('attention with a bias neither [heads, rows, keys] nor [batch, heads, rows, keys] throws at enqueue', async (c, r) => {
    await c.step(async () => {
      c.expectThrows('attention(bias [4, 2, 3] for keys 2)', badCall(c, r, {}, { bias: c.f32(r.uniform(24), [4, 2, 3]) }));
      c.expectThrows('attention(bias [2, 4, 2, 2] for batch 1)', badCall(c, r, {}, { bias: c.f32(r.uniform(32), [2, 4, 2, 2]) }));
    });
  });
}

// ───────────────────────────── collectives (worker threads) ─────────────────────────────

type RankEvent = CollectiveWorkerMessage | { type: 'exit'; rank: number; code: number };

interface WorkerLike {
  on(event: 'message', listener: (m: CollectiveWorkerMessage) => void): unknown;
  on(event: 'error', listener: (e: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

/** The worker script, next to this module when built; from sources, the built one. */
async function collectiveWorkerUrl(): Promise<URL> {
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const candidates = [
    new URL('./collective-worker.js', import.meta.url),
    new URL('./testing/collective-worker.js', import.meta.url),
    new URL('../../dist/testing/collective-worker.js', import.meta.url),
  ];
  for (const url of candidates) if (url.protocol === 'file:' && existsSync(fileURLToPath(url))) return url;
  throw new Error(`the conformance collective worker is not built (looked for ${candidates.map((u) => u.href).join(', ')}); run pnpm --filter @tp/core build`);
}

class RankGroup {
  readonly events: Array<RankEvent & { at: number }> = [];
  private readonly workers: WorkerLike[] = [];

  static async start(backend: Backend, world: number, scenario: CollectiveScenario, culprit: number, timeoutMs: number, counters?: SharedArrayBuffer): Promise<{ group: RankGroup; communicator: CommunicatorInit }> {
    const { Worker } = await import('node:worker_threads');
    const url = await collectiveWorkerUrl();
    const communicator = backend.createCommunicator(world, { timeoutMs });
    const group = new RankGroup();
    for (let rank = 0; rank < world; rank++) {
      const data: CollectiveWorkerData = { moduleUrl: backend.moduleUrl, communicator, rank, world, scenario, culprit, ...(counters ? { counters } : {}) };
      const worker = new Worker(url, { workerData: data }) as unknown as WorkerLike;
      worker.on('message', (m) => group.events.push({ ...m, at: Date.now() }));
      worker.on('error', (e) => group.events.push({ type: 'error', rank, name: e.name, message: e.message, stage: 'uncaught', at: Date.now() }));
      worker.on('exit', (code) => group.events.push({ type: 'exit', rank, code, at: Date.now() }));
      group.workers.push(worker);
    }
    return { group, communicator };
  }

  /** The first event of `rank` among `types`. */
  find(rank: number, ...types: Array<RankEvent['type']>): (RankEvent & { at: number }) | undefined {
    return this.events.find((e) => e.rank === rank && types.includes(e.type));
  }

  /** Wait until `done` holds; on the deadline, throw what `describe` says. */
  async until(done: () => boolean, ms: number, describe: () => string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() > deadline) throw new ConformanceError(describe());
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate().catch(() => 0)));
  }
}

const errorText = (e: RankEvent | undefined): string => {
  if (e === undefined) return 'nothing';
  if (e.type === 'error') return `${e.name} in ${e.stage}: ${e.message}`;
  if (e.type === 'exit') return `exit with code ${e.code} before reporting`;
  return e.type;
};

async function collectivesCase(backend: Backend, world: number): Promise<void> {
  const counters = new SharedArrayBuffer(16);
  const { group } = await RankGroup.start(backend, world, 'collectives', -1, 30_000, counters);
  try {
    const ranks = Array.from({ length: world }, (_, r) => r);
    const pending = () => ranks.filter((r) => !group.find(r, 'result', 'error', 'exit'));
    await group.until(() => pending().length === 0, 60_000, () => `world ${world}: ranks ${pending().join(', ')} never reported within 60 s (a hang?)`);
    // Every rank's every result is checked; all mismatches are reported together.
    const problems: string[] = [];
    for (const rank of ranks) {
      const event = group.find(rank, 'result', 'error', 'exit')!;
      if (event.type !== 'result') {
        problems.push(`rank ${rank} failed: ${errorText(event)}`);
        continue;
      }
      const results = event.results;
      const check = (name: string, shape: number[], expected: ArrayLike<number>) => {
        const got = results[name];
        if (!got) return problems.push(`rank ${rank}: no result for ${name}`);
        const where = `rank ${rank}, ${name}`;
        if (got.shape.length !== shape.length || got.shape.some((n, i) => n !== shape[i])) {
          problems.push(`${where}: shape ${shapeText(got.shape)}, expected ${shapeText(shape)}${got.values.length === expected.length ? '' : ` (${got.values.length} elements, expected ${expected.length})`}`);
        }
        try {
          compare(where, shape, got.values, expected, EXACT);
        } catch (error) {
          problems.push(`${(error as Error).message}; got ${JSON.stringify(got.values.slice(0, 40))}${got.values.length > 40 ? '…' : ''}`);
        }
        return undefined;
      };
      for (const name of ALL_REDUCES) {
        const inputs = ranks.map((r) => allReduceInput(name, r));
        const sum = Float64Array.from(inputs[0]!.values, (_, i) => inputs.reduce((s, x) => s + x.values[i]!, 0));
        check(name, inputs[0]!.shape, sum);
      }
      const oneD = ranks.map((r) => allGatherInput(false, r));
      check('allGather 1-D', [oneD.reduce((n, x) => n + x.shape[0]!, 0)], oneD.flatMap((x) => Array.from(x.values)));
      const twoD = ranks.map((r) => allGatherInput(true, r));
      const rowsOf = (row: number) => twoD.flatMap((x) => Array.from(x.values.subarray(row * x.shape[1]!, (row + 1) * x.shape[1]!)));
      check('allGather 2-D', [2, twoD.reduce((n, x) => n + x.shape[1]!, 0)], [...rowsOf(0), ...rowsOf(1)]);
      for (let root = 0; root < world; root++) check(`broadcast root ${root}`, [29], broadcastInput(root, root).values);
      check('barrier', [3], [world, world, world]);
    }
    if (problems.length > 0) {
      const inputs = `inputs: allGather 1-D rank r: [${ranks.map((r) => 5 + 2 * r).join(', ')}] wide; allGather 2-D rank r: [2, ${ranks.map((r) => 1 + r).join(' | ')}]`;
      throw new ConformanceError(`world ${world}: ${problems.length} problem${problems.length === 1 ? '' : 's'} (${inputs}):\n  ${problems.slice(0, 24).join('\n  ')}`);
    }
  } finally {
    await group.terminate();
  }
}

/** One rank fails (it never calls allReduce and aborts the communicator); the others must reject soon after. */
async function failingRankCase(backend: Backend, world: number): Promise<void> {
  const culprit = world - 1;
  // counters[0]: how many of the other ranks have created their rank (the culprit waits for all).
  const { group } = await RankGroup.start(backend, world, 'fail', culprit, 60_000, new SharedArrayBuffer(4));
  try {
    const others = Array.from({ length: world }, (_, r) => r).filter((r) => r !== culprit);
    await group.until(
      () => group.find(culprit, 'aborted', 'error', 'exit') !== undefined,
      30_000,
      () => `world ${world}: rank ${culprit} never got to abort (${errorText(group.find(culprit, 'error', 'exit'))})`,
    );
    const aborted = group.find(culprit, 'aborted', 'error', 'exit')!;
    if (aborted.type !== 'aborted') throw new ConformanceError(`world ${world}: rank ${culprit} failed before aborting: ${errorText(aborted)}`);
    const pending = () => others.filter((r) => !group.find(r, 'result', 'error', 'exit'));
    await group.until(
      () => pending().length === 0,
      5_000,
      () => `world ${world}: ranks ${pending().join(', ')} still blocked in allReduce 5 s after rank ${culprit} called abortCommunicator (a hang)`,
    );
    for (const rank of others) {
      const e = group.find(rank, 'result', 'error', 'exit')!;
      if (e.type === 'result') throw new ConformanceError(`world ${world}: rank ${rank}'s allReduce resolved although rank ${culprit} never joined it`);
      if (e.type !== 'error' || e.stage !== 'allReduce') throw new ConformanceError(`world ${world}: rank ${rank} failed outside allReduce: ${errorText(e)}`);
      const names = e.failedRank === culprit || e.message.includes(`rank ${culprit}`);
      if (!names) throw new ConformanceError(`world ${world}: rank ${rank}'s error does not name the failed rank ${culprit}: ${errorText(e)}`);
    }
  } finally {
    await group.terminate();
  }
}

/** One rank never arrives (and never aborts): the others' allReduce must fail after the communicator's timeout. */
async function stuckRankCase(backend: Backend, world: number): Promise<void> {
  const culprit = 0;
  const timeoutMs = 1500;
  const { group } = await RankGroup.start(backend, world, 'stuck', culprit, timeoutMs);
  try {
    const ranks = Array.from({ length: world }, (_, r) => r);
    const others = ranks.filter((r) => r !== culprit);
    await group.until(
      () => ranks.every((r) => group.find(r, 'ready', 'error', 'exit')),
      30_000,
      () => `world ${world}: ranks ${ranks.filter((r) => !group.find(r, 'ready', 'error', 'exit')).join(', ')} never created their rank`,
    );
    for (const rank of ranks) {
      const e = group.find(rank, 'ready', 'error', 'exit')!;
      if (e.type !== 'ready') throw new ConformanceError(`world ${world}: rank ${rank} failed to start: ${errorText(e)}`);
    }
    const pending = () => others.filter((r) => !group.find(r, 'result', 'error', 'exit'));
    await group.until(
      () => pending().length === 0,
      timeoutMs + 5_000,
      () => `world ${world}: ranks ${pending().join(', ')} still blocked in allReduce ${(timeoutMs + 5000) / 1000} s after starting, with rank ${culprit} absent and a ${timeoutMs} ms timeout (a hang)`,
    );
    for (const rank of others) {
      const e = group.find(rank, 'result', 'error', 'exit')!;
      if (e.type === 'result') throw new ConformanceError(`world ${world}: rank ${rank}'s allReduce resolved although rank ${culprit} never joined it`);
      if (e.type !== 'error' || e.stage !== 'allReduce') throw new ConformanceError(`world ${world}: rank ${rank} failed outside allReduce: ${errorText(e)}`);
      const names = e.failedRank === culprit || e.message.includes(`rank ${culprit}`) || e.message.includes(`ranks ${culprit}`);
      if (!names) throw new ConformanceError(`world ${world}: rank ${rank}'s timeout error does not name the missing rank ${culprit}: ${errorText(e)}`);
    }
  } finally {
    await group.terminate();
  }
}

function collectiveCases(cases: ConformanceCase[], backend: Backend, worlds: number[]): void {
  for (const world of worlds) {
    cases.push({ name: `collectives world ${world}: allReduce (incl. ${ALL_REDUCES.length} sizes, one past a 64 Ki-float slot), allGather of unequal widths (1-D, 2-D), broadcast from every root, barrier`, run: () => collectivesCase(backend, world) });
  }
  for (const world of worlds) {
    if (world < 2) continue;
    cases.push({ name: `collectives world ${world}: a failing rank's abortCommunicator makes the others' allReduce reject`, run: () => failingRankCase(backend, world) });
    cases.push({ name: `collectives world ${world}: a rank that never arrives makes the others' allReduce time out, naming it`, run: () => stuckRankCase(backend, world) });
  }
}

// ───────────────────────────── the suite ─────────────────────────────

/**
 * The conformance cases for `backend`. Single-rank cases each create a rank of world 1 on the calling
 * thread (and dispose it); collective cases start one worker thread per rank that imports
 * `backend.moduleUrl`, so that module must be importable as built JavaScript.
 */
export function conformanceCases(backend: Backend, options: ConformanceOptions = {}): ConformanceCase[] {
  const dtypes = (options.dtypes ?? [...backend.storageDtypes]).filter((d) => backend.storageDtypes.includes(d));
  const backendKv = backend.kvDtypes ?? backend.storageDtypes;
  const kvDtypes = (options.dtypes ?? [...backendKv]).filter((d) => backendKv.includes(d));
  const worlds = options.worlds ?? [1, 2, 3, 4];
  const cases: ConformanceCase[] = [];
  const names = new Set<string>();
  const single: Single = (name, body) => {
    if (names.has(name)) throw new Error(`conformance suite bug: two cases named "${name}"`);
    names.add(name);
    cases.push({ name, run: () => withRank(backend, name, body) });
  };
  uploadCases(single, dtypes);
  linearCases(single, dtypes);
  normCases(single, dtypes);
  elementwiseCases(single);
  layoutCases(single);
  selectionCases(single);
  if (kvDtypes.length > 0) {
    attentionCases(single, kvDtypes, backendKv);
    const main: StorageDtype = kvDtypes.includes('f32') ? 'f32' : kvDtypes[0]!;
    attentionV3Cases(single, main, main === 'f32' ? '' : ` (${main} KV cache)`);
    reorderCases(single, kvDtypes);
  }
  collectiveCases(cases, backend, worlds);
  return cases;
}

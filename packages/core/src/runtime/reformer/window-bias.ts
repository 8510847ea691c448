/**
 * Reformer's chunked attention (transformers' LocalSelfAttention and LSHSelfAttention) expressed as
 * ordinary attention over a sequence's keys with an additive bias, one [rows, keys] block per
 * sequence and head.
 *
 * transformers lays the sequence out in an order (positions 0 … n − 1 for local attention; sorted by
 * bucket, one block per hashing round, for LSH), cuts it into chunks, and lets each query attend to
 * its chunk and its neighbours (`_look_adjacent`, which wraps around). A key of that window is
 * replaced by -1e9 when it is in the query's future or padding, and — LSH only, where queries and keys
 * share a projection — the query's own key by -1e5. The softmax runs over the window, and several
 * hashing rounds are merged with weights exp(logsumexp_r − logsumexp over rounds).
 *
 * That is one softmax over every occurrence of every key in the query's windows (all rounds), so:
 * - a key that occurs c times unmasked gets bias log c (an occurrence adds e^score to the sum);
 * - masked occurrences (-1e9) never weigh anything: the query's own key is always in its window at
 *   -1e5 or better, so e^(-1e9 − max) is 0 in f32; they are hidden (bias −∞) here;
 * - the query's own key under LSH gets -1e5 (+ log of its occurrences): next to any unmasked key it
 *   weighs 0 as it does in transformers, and alone (the first token of a sequence) it takes all the
 *   weight, as it does there — whatever its score;
 * - keys that are in none of the query's windows are hidden.
 * One thing the bias cannot say: a query that sees only its own key. transformers then works at the
 * -1e5 scale in f32 (logsumexp -1e5 + log n rounded to a 2^-7 grid, the rounds merged from there),
 * and its output is v·φ with φ within a few 10^-3 of 1 — not 1 when the key occurs more than once
 * (several rounds, or a window that wraps onto its own chunk). `selfOnlyScale` computes φ; the
 * engine applies it.
 */
import { InternalError } from '../../errors/index.js';

/** A bias that hides a key exactly like padding (backend interface: ≤ -1e30). */
export const HIDDEN_KEY = -Infinity;
/** transformers' LSHSelfAttention.self_mask_value_float32. */
export const SELF_MASK_VALUE = -1e5;

export interface ChunkWindow {
  chunkLength: number;
  /** Neighbouring chunks before and after a query's own. */
  before: number;
  after: number;
}

export interface ChunkedSoftmax {
  /**
   * The positions in transformers' chunked order: entry k is the position at index k (hashing rounds
   * × padded entries under LSH, one after the other; 0 … padded − 1 for local attention).
   */
  order: ArrayLike<number>;
  /** Real tokens: rows [0, length) get a bias; positions from `length` on are transformers' padding. */
  length: number;
  window: ChunkWindow;
  /** LSH's shared query-key attention: a query sees its own key at SELF_MASK_VALUE only. */
  selfMask: boolean;
  /** Hashing rounds in `order` (each `order.length / rounds` entries). Default 1. */
  rounds?: number;
}

/** A query (under the self mask) that sees no key but its own: how often it sees it in each round. */
export interface SelfOnlyRow {
  query: number;
  counts: number[];
}

/** Identity order 0 … n − 1 (local attention, and the unchunked path). */
export function identityOrder(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/**
 * The window transformers uses for a sequence run at `padded` positions: chunked, unless the whole
 * sequence fits one chunk — then it attends over all of it (`do_standard_self_attention`).
 */
export function windowFor(chunking: ChunkWindow, padded: number): ChunkWindow {
  return padded <= chunking.chunkLength ? { chunkLength: padded, before: 0, after: 0 } : chunking;
}

/**
 * The chunks whose keys a query in `chunk` (of `chunks`) sees, in transformers' _look_adjacent order:
 * offset o takes chunk (chunk + o) mod chunks, except that an offset of at least `chunks` in size
 * slices the whole list and lands on the query's own chunk again.
 */
export function adjacentChunks(chunk: number, chunks: number, window: Pick<ChunkWindow, 'before' | 'after'>): number[] {
  const out: number[] = [];
  for (let o = -window.before; o <= window.after; o++) out.push(o === 0 || Math.abs(o) >= chunks ? chunk : (((chunk + o) % chunks) + chunks) % chunks);
  return out;
}

/**
 * Write rows [0, length) of one sequence's [rows, keys] bias block, starting at `at` of `out` with
 * `keys` floats per row (rows and keys beyond `length` are the caller's; keys ≥ length are hidden
 * here). Returns the queries that see only their own key (under the self mask).
 */
export function chunkedSoftmaxBias(out: Float32Array, at: number, keys: number, s: ChunkedSoftmax): SelfOnlyRow[] {
  const { order, length, window, selfMask } = s;
  const rounds = s.rounds ?? 1;
  const size = window.chunkLength;
  if (size < 1 || order.length % size !== 0) throw new InternalError(`a chunked order of ${order.length} entries does not split into chunks of ${size}`);
  if (keys < length) throw new InternalError(`a bias of ${keys} keys cannot hold a sequence of ${length}`);
  if (rounds < 1 || order.length % rounds !== 0) throw new InternalError(`${order.length} ordered entries do not make ${rounds} rounds`);
  const perRound = order.length / rounds;
  const chunks = order.length / size;
  const visible = new Uint32Array(length * length);
  const seen = new Uint8Array(length);
  const self = new Uint32Array(length * rounds);
  for (let chunk = 0; chunk < chunks; chunk++) {
    const sources = adjacentChunks(chunk, chunks, window);
    for (let i = chunk * size; i < (chunk + 1) * size; i++) {
      const q = order[i]!;
      if (q >= length) continue; // a padding row: transformers drops its output
      const round = Math.floor(i / perRound);
      for (const source of sources) {
        for (let j = source * size; j < (source + 1) * size; j++) {
          const k = order[j]!;
          if (k === q && selfMask) {
            self[q * rounds + round]!++;
          } else if (k <= q) {
            visible[q * length + k]!++; // k ≤ q < length: neither future nor padding
            seen[q] = 1;
          }
        }
      }
    }
  }
  const selfOnly: SelfOnlyRow[] = [];
  for (let q = 0; q < length; q++) {
    const row = out.subarray(at + q * keys, at + (q + 1) * keys);
    row.fill(HIDDEN_KEY);
    for (let k = 0; k < length; k++) {
      const n = visible[q * length + k]!;
      if (n > 0) row[k] = Math.log(n);
    }
    if (!selfMask) continue;
    const counts = Array.from(self.subarray(q * rounds, (q + 1) * rounds));
    row[q] = SELF_MASK_VALUE + Math.log(counts.reduce((a, b) => a + b, 0));
    if (seen[q] === 0) selfOnly.push({ query: q, counts });
  }
  return selfOnly;
}

/**
 * φ of a query that sees only its own key, `counts[r]` times in round r, as transformers computes it
 * in f32: per round the logsumexp is fround(-1e5 + log n) and each occurrence weighs
 * exp(-1e5 − that); rounds are merged by exp(lse_r − logsumexp over rounds) (only when there are
 * several). The output is φ·v of the query's own value.
 */
export function selfOnlyScale(counts: readonly number[]): number {
  const f = Math.fround;
  const lse = counts.map((n) => f(SELF_MASK_VALUE + f(Math.log(n))));
  const rounds = counts.map((n, r) => n * f(Math.exp(f(SELF_MASK_VALUE - lse[r]!))));
  if (counts.length === 1) return rounds[0]!;
  const max = Math.max(...lse);
  const total = f(max + f(Math.log(lse.reduce((s, x) => s + f(Math.exp(f(x - max))), 0))));
  return rounds.reduce((s, x, r) => s + x * f(Math.exp(f(lse[r]! - total))), 0);
}

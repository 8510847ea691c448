/**
 * Choosing the next token from logits, on the coordinator: greedy, or sampling with temperature,
 * top-k and top-p from a seeded generator. Every rank receives the token chosen here, so ranks never
 * diverge.
 */
export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** A small seeded generator (mulberry32): the same seed gives the same tokens. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest logit (the first one on ties, like torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, options: SamplingOptions, random: () => number): number {
  const temperature = options.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  let candidates = Array.from(logits, (l, i) => ({ i, l: l / temperature }));
  candidates.sort((a, b) => b.l - a.l || a.i - b.i);
  if (options.topK !== undefined && options.topK > 0) candidates = candidates.slice(0, options.topK);
  const max = candidates[0]!.l;
  let probs = candidates.map((c) => Math.exp(c.l - max));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (options.topP !== undefined && options.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && (keep === 0 || cumulative < options.topP)) cumulative += probs[keep++]!;
    candidates = candidates.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  let r = random();
  for (let k = 0; k < probs.length; k++) {
    r -= probs[k]!;
    if (r <= 0) return candidates[k]!.i;
  }
  return candidates[candidates.length - 1]!.i;
}

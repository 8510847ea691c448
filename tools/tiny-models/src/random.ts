/**
 * Deterministic weights. Every tensor gets its own 32-bit stream, seeded from the user's seed and a
 * hash of the tensor's name, so a value never depends on which other tensors exist or on how the
 * checkpoint is sharded. The stream is a Weyl sequence (a counter stepped by the golden ratio) passed
 * through a 32-bit avalanche mix; pairs of uniforms become normals by the Box–Muller transform (polar form).
 */

const GOLDEN = 0x9e3779b9;

/** A 32-bit avalanche: every input bit flips about half of the output bits. */
export function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of a string. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The stream seed of one tensor. `seed` is any non-negative safe integer. */
export function tensorSeed(seed: number, name: string): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return mix32(mix32(lo ^ mix32(hi + GOLDEN)) ^ hashString(name));
}

const INV_2_31 = 2 ** -31;

/**
 * Fill `out` with mean + std·N(0, 1) drawn from the stream `seed`: Box–Muller in Marsaglia's polar
 * form (a point drawn in the unit disc gives two normals with one log and one square root, no sine or
 * cosine), which is what keeps a 134M-parameter checkpoint to about a second of arithmetic.
 */
export function fillNormal(out: Float32Array, seed: number, mean: number, std: number): Float32Array {
  let state = seed | 0;
  const n = out.length;
  let i = 0;
  while (i < n) {
    state = (state + GOLDEN) | 0;
    let a = state;
    a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
    a = Math.imul(a ^ (a >>> 15), 0x846ca68b);
    a ^= a >>> 16;
    state = (state + GOLDEN) | 0;
    let b = state;
    b = Math.imul(b ^ (b >>> 16), 0x7feb352d);
    b = Math.imul(b ^ (b >>> 15), 0x846ca68b);
    b ^= b >>> 16;
    // a and b are signed 32-bit: x and y are uniform in [-1, 1).
    const x = a * INV_2_31;
    const y = b * INV_2_31;
    const s = x * x + y * y;
    if (s >= 1 || s === 0) continue;
    const f = std * Math.sqrt((-2 * Math.log(s)) / s);
    out[i++] = mean + x * f;
    if (i < n) out[i++] = mean + y * f;
  }
  return out;
}

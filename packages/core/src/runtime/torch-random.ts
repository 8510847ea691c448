/**
 * torch's CPU random numbers, reproduced bit for bit: `torch.manual_seed(seed); torch.randn(n)` on
 * the CPU. Reformer draws its LSH rotations this way (transformers' LSHSelfAttention._hash_vectors:
 * `torch.manual_seed(hash_seed)` then `torch.randn(rotations_shape)`), so the buckets a checkpoint
 * was trained and evaluated with depend on these exact floats.
 *
 * What torch does (aten/src/ATen/CPUGeneratorImpl.cpp, core/MT19937RNGEngine.h,
 * core/DistributionsHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h):
 * - the generator is the 32-bit Mersenne Twister, seeded with the low 32 bits of the seed;
 * - a float uniform in [0, 1) is the low 24 bits of one draw times 2^-24;
 * - `randn` of a contiguous float tensor of at least 16 elements fills it with uniforms first, then
 *   turns each group of 16 into normals by Box–Muller (the first 8 as u1, the next 8 as u2); when the
 *   size is not a multiple of 16 the last 16 elements are drawn again and recomputed. On x86 this runs
 *   `normal_fill_16_AVX2`, whose log and sin/cos are the Cephes polynomials of avx_mathfun.h in f32,
 *   compiled with fused multiply-adds; both are reproduced here operation by operation;
 * - fewer than 16 elements take `normal_distribution<double>`: two 53-bit uniforms per pair, the
 *   cosine returned and the sine kept for the next element.
 */

const f = Math.fround;
const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

function bitsOf(x: number): number {
  scratch[0] = x;
  return scratchBits[0]!;
}

function fromBits(bits: number): number {
  scratchBits[0] = bits >>> 0;
  return scratch[0]!;
}

/** The f32 next to `r` (an f32) towards +∞ when `up`, towards −∞ otherwise. */
function nextF32(r: number, up: boolean): number {
  if (r === 0) return up ? fromBits(1) : -fromBits(1);
  return fromBits(r > 0 === up ? bitsOf(r) + 1 : bitsOf(r) - 1);
}

/**
 * a·b + c of f32 values rounded once to f32 (a hardware FMA). The product is exact in f64; the sum's
 * f64 rounding error is recovered exactly (TwoSum), and it decides the only case where rounding the
 * f64 sum to f32 could differ from rounding the exact sum: an f64 sum exactly halfway between two f32.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = f(s);
  if (err === 0 || r === s) return r;
  const other = nextF32(r, s > r);
  if (s - r !== other - s) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

/** The Mersenne Twister MT19937 as torch's at::mt19937 runs it (the standard algorithm). */
export class TorchCpuGenerator {
  private readonly state = new Uint32Array(624);
  private index = 624;

  /** `torch.manual_seed(seed)`: only the low 32 bits of the seed reach the state. */
  constructor(seed: number | bigint) {
    const s = this.state;
    s[0] = Number(BigInt(seed) & 0xffffffffn);
    for (let i = 1; i < 624; i++) {
      const prev = s[i - 1]! ^ (s[i - 1]! >>> 30);
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** One 32-bit draw (CPUGeneratorImpl::random). */
  random(): number {
    const s = this.state;
    if (this.index >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (s[k]! & 0x80000000) | (s[(k + 1) % 624]! & 0x7fffffff);
        s[k] = s[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = s[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** uniform_real_distribution<float>(0, 1): the low 24 bits of one draw. */
  uniformFloat(): number {
    return (this.random() & 0xffffff) * 2 ** -24;
  }

  /** uniform_real_distribution<double>(0, 1): the low 53 bits of random64() = (first draw << 32) | second. */
  uniformDouble(): number {
    const hi = this.random();
    const lo = this.random();
    return ((hi & 0x1fffff) * 2 ** 32 + lo) * 2 ** -53;
  }
}

// ---- avx_mathfun.h's log256_ps and sincos256_ps, one lane, in f32 ------------------------------

const SQRT_HALF = f(0.707106781186547524);
const LOG_P = [7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f);
const LOG_Q1 = f(-2.1219444e-4);
const LOG_Q2 = f(0.693359375);
const MIN_NORMAL = fromBits(0x00800000);

/**
 * log256_ps: split x into mantissa m in [√½, √2) and exponent e, then a degree-9 polynomial in m − 1.
 * The multiply-adds GCC fuses (every `y·x + p`, `y·z + e·q1`, `x + e·q2`) are single-rounded here.
 */
function cephesLog(input: number): number {
  if (!(input > 0)) return NaN;
  let x = Math.max(input, MIN_NORMAL);
  const bits = bitsOf(x);
  let e = f((bits >>> 23) - 0x7f);
  x = fromBits((bits & ~0x7f800000) | bitsOf(0.5));
  e = f(e + 1);
  const below = x < SQRT_HALF;
  const tmp = below ? x : 0;
  x = f(x - 1);
  e = f(e - (below ? 1 : 0));
  x = f(x + tmp);
  const z = f(x * x);
  let y = fmaF32(LOG_P[0]!, x, LOG_P[1]!);
  for (let i = 2; i < LOG_P.length; i++) y = fmaF32(y, x, LOG_P[i]!);
  y = f(y * x);
  y = fmaF32(y, z, f(e * LOG_Q1));
  y = fmaF32(-z, 0.5, y);
  x = f(x + y);
  return fmaF32(e, LOG_Q2, x);
}

const FOUR_OVER_PI = f(1.27323954473516);
const DP1 = f(-0.78515625);
const DP2 = f(-2.4187564849853515625e-4);
const DP3 = f(-3.77489497744594108e-8);
const SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f);
const COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f);

/** sincos256_ps: reduce by multiples of π/4 (three-part π/4), then the Cephes sine and cosine polynomials. */
function cephesSinCos(input: number): { sin: number; cos: number } {
  let sinNegative = input < 0 || Object.is(input, -0);
  let x = Math.abs(input);
  let j = Math.trunc(f(x * FOUR_OVER_PI)) | 0;
  j = (j + 1) & ~1;
  const y = j;
  sinNegative = sinNegative !== ((j & 4) !== 0);
  const cosNegative = (~(j - 2) & 4) !== 0;
  const sinPolynomial = (j & 2) === 0;
  x = fmaF32(y, DP1, x);
  x = fmaF32(y, DP2, x);
  x = fmaF32(y, DP3, x);
  const z = f(x * x);
  let c = fmaF32(COS_P[0]!, z, COS_P[1]!);
  c = fmaF32(c, z, COS_P[2]!);
  c = f(c * z);
  c = fmaF32(c, z, -f(z * 0.5));
  c = f(c + 1);
  let s = fmaF32(SIN_P[0]!, z, SIN_P[1]!);
  s = fmaF32(s, z, SIN_P[2]!);
  s = f(s * z);
  s = fmaF32(s, x, x);
  const sin = sinPolynomial ? s : c;
  const cos = sinPolynomial ? c : s;
  return { sin: sinNegative ? -sin : sin, cos: cosNegative ? -cos : cos };
}

const TWO_PI_F32 = f(2 * Math.PI);

/** normal_fill_16_AVX2 on data[at, at + 16): uniforms in, standard normals out. */
function normalFill16(data: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - data[at + j]!); // [0, 1) → (0, 1] for the log
    const u2 = data[at + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * cephesLog(u1))));
    const { sin, cos } = cephesSinCos(f(TWO_PI_F32 * u2));
    data[at + j] = radius * cos;
    data[at + j + 8] = radius * sin;
  }
}

/** `torch.manual_seed(seed); torch.randn(count)` (float32, CPU), in memory order. */
export function torchRandn(seed: number | bigint, count: number): Float32Array {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`torchRandn needs a whole number of elements, got ${count}`);
  const g = new TorchCpuGenerator(seed);
  const data = new Float32Array(count);
  if (count >= 16) {
    for (let i = 0; i < count; i++) data[i] = g.uniformFloat();
    for (let i = 0; i + 16 <= count; i += 16) normalFill16(data, i);
    if (count % 16 !== 0) {
      for (let i = count - 16; i < count; i++) data[i] = g.uniformFloat();
      normalFill16(data, count - 16);
    }
    return data;
  }
  // normal_distribution<double>: r·cos now, r·sin cached for the next element.
  let cached: number | undefined;
  for (let i = 0; i < count; i++) {
    if (cached !== undefined) {
      data[i] = cached;
      cached = undefined;
      continue;
    }
    const u1 = g.uniformDouble();
    const u2 = g.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    cached = r * Math.sin(theta);
    data[i] = r * Math.cos(theta);
  }
  return data;
}

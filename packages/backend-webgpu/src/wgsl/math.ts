/**
 * WGSL math the kernels share, written to match the f64 reference within f32 rounding:
 * - sin/cos with an explicit range reduction, because WGSL only promises 2^-11 absolute accuracy for
 *   sin and cos inside [-π, π] and nothing outside, while rotary angles reach thousands of radians.
 *   The angle is reduced by k·π/2 in three parts (Cody–Waite: the first two have few significant bits,
 *   so k·part is exact for k < 2^13), then evaluated by the minimax polynomials of Cephes' sinf/cosf
 *   on [-π/4, π/4] (coefficients from S. L. Moshier's Cephes library).
 * - erf, which WGSL lacks: a series of positive terms below 1.5 and the continued fraction of erfc
 *   above (both standard; see erfcPositive), accurate to ~1e-7 absolute where gelu needs it.
 * - tanh on a clamped argument: tanh(±10) is ±1 in f32, and large arguments overflow some builds.
 */
export const MATH = /* wgsl */ `
fn sinCosReduced(a: f32, extra: f32) -> vec2f {
  let k = round(a * 0.636619772367581343);
  var r = ((a - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8;
  r = r + extra;
  let r2 = r * r;
  let s = r + r * r2 * (-1.6666654611e-1 + r2 * (8.3321608736e-3 + r2 * -1.9515295891e-4));
  let c = 1.0 - 0.5 * r2 + r2 * r2 * (4.166664568298827e-2 + r2 * (-1.388731625493765e-3 + r2 * 2.443315711809948e-5));
  let q = i32(k) & 3;
  if (q == 0) { return vec2f(s, c); }
  if (q == 1) { return vec2f(c, -s); }
  if (q == 2) { return vec2f(-s, -c); }
  return vec2f(-c, s);
}

/** (sin a, cos a) of an f32 angle. */
fn sinCos(a: f32) -> vec2f { return sinCosReduced(a, 0.0); }

/** e^(-z²) with the rounding error of z² corrected (fma gives it exactly): relative error of exp alone. */
fn expNegSquare(z: f32) -> f32 {
  let hi = z * z;
  let lo = fma(z, z, -hi);
  return exp(-hi) * (1.0 - lo);
}

/** erfc(z) for z ≥ 0, to a few units in the last place of f32 (absolute ≤ ~1e-7 below 1.5). */
fn erfcPositive(z: f32) -> f32 {
  if (z < 1.5) {
    // erf(z) = 2/√π · e^(-z²) · Σ (2z²)^n z / (1·3·…·(2n+1)): every term positive, 16 reach 1e-8 at 1.5.
    let z2 = 2.0 * z * z;
    var term = z;
    var s = z;
    for (var n = 0u; n < 16u; n++) {
      term *= z2 / f32(2u * n + 3u);
      s += term;
    }
    return 1.0 - 1.1283791670955126 * expNegSquare(z) * s;
  }
  // erfc(z) = e^(-z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))): 24 levels reach 3e-8 at 1.5.
  var t = 0.0;
  for (var n = 24u; n >= 1u; n--) { t = (f32(n) * 0.5) / (z + t); }
  return expNegSquare(z) * 0.5641895835477563 / (z + t);
}

/** 1 + erf(x), computed as erfc(-x) so that negative x keeps its precision. */
fn onePlusErf(x: f32) -> f32 {
  let e = erfcPositive(abs(x));
  return select(2.0 - e, e, x < 0.0);
}

fn safeTanh(x: f32) -> f32 { return tanh(clamp(x, -10.0, 10.0)); }

fn sigmoid(x: f32) -> f32 {
  // e^-|x| never overflows; mirror for negative x.
  let e = exp(-abs(x));
  return select(1.0 / (1.0 + e), e / (1.0 + e), x < 0.0);
}

/** The activations of the backend interface, by code: 0 silu, 1 gelu, 2 gelu_tanh, 3 relu, 4 gelu_quick, 5 identity. */
fn activate(x: f32, kind: u32) -> f32 {
  switch kind {
    case 0u: { return x * sigmoid(x); }
    case 1u: { return 0.5 * x * onePlusErf(x * 0.7071067811865476); }
    case 2u: { return 0.5 * x * (1.0 + safeTanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
    case 3u: { return max(x, 0.0); }
    case 4u: { return x * sigmoid(1.702 * x); }
    default: { return x; }
  }
}
`;

export const ACTIVATION_CODES = { silu: 0, gelu: 1, gelu_tanh: 2, relu: 3, gelu_quick: 4, identity: 5 } as const;

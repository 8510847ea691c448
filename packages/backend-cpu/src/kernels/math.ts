/** Scalar functions the kernels share. */

/** erf to ~1e-7 (Abramowitz & Stegun 7.1.26 is not enough near 0; this is their 7.1.28-style series plus a continued tail). */
export function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a < 2.5) {
    // Maclaurin series: converges fast for |x| < 2.5 in double precision.
    let term = a;
    let sum = a;
    const x2 = a * a;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for the tail.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return sign * (1 - erfc);
}

export const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
export const silu = (x: number) => x / (1 + Math.exp(-x));
export const relu = (x: number) => (x > 0 ? x : 0);
export const geluQuick = (x: number) => x / (1 + Math.exp(-1.702 * x));

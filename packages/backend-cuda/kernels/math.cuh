// Per-element math of the CUDA kernels, written once as host-and-device functions: nvcc compiles it
// into the kernels (kernels.cu), g++ into the addon, where test/math.test.ts checks it against
// @tp/core/testing's reference kernels. No CUDA header is included: 16-bit floats are integers,
// converted by hand; arithmetic is f32 (f64 where the reference's own rounding asks for it).
#pragma once

#ifdef __CUDACC__
#define TP_HD __host__ __device__ __forceinline__
#else
#define TP_HD inline
#include <math.h>
#include <string.h>
#endif

namespace tpk {

// Storage dtype codes shared with the TypeScript side (src/kernels.ts, DTYPE_CODE).
enum Dtype : int { F32 = 0, F16 = 1, BF16 = 2, I32 = 3 };

// Activation codes (src/kernels.ts, ACTIVATION_CODE).
enum Act : int { IDENTITY = 0, SILU = 1, GELU = 2, GELU_TANH = 3, RELU = 4, GELU_QUICK = 5, SIGMOID = 6 };

TP_HD unsigned f32_bits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  unsigned u;
  memcpy(&u, &x, 4);
  return u;
#endif
}

TP_HD float bits_f32(unsigned u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float x;
  memcpy(&x, &u, 4);
  return x;
#endif
}

// ───────────────────────────── 16-bit floats ─────────────────────────────

TP_HD float bf16_to_f32(unsigned short h) { return bits_f32(static_cast<unsigned>(h) << 16); }

/** Round to nearest, ties to even; NaN stays a (quiet) NaN, overflow becomes infinity. */
TP_HD unsigned short f32_to_bf16(float x) {
  unsigned u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((u >> 16) | 0x40u);
  return static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

TP_HD float f16_to_f32(unsigned short h) {
  unsigned sign = (static_cast<unsigned>(h) & 0x8000u) << 16;
  unsigned e = (h >> 10) & 0x1fu;
  unsigned m = h & 0x3ffu;
  if (e == 0) {
    float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m · 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/** Round to nearest, ties to even; beyond 65504 (from 65520 on) infinity; subnormals kept. */
TP_HD unsigned short f32_to_f16(float x) {
  unsigned u = f32_bits(x);
  unsigned sign = (u >> 16) & 0x8000u;
  unsigned a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<unsigned short>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00u);  // >= 65520
  if (a >= 0x38800000u) {                                                      // normal: >= 2^-14
    unsigned mant = a & 0x7fffffu;
    unsigned h = (((a >> 23) - 112u) << 10) | (mant >> 13);
    unsigned rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;  // a carry moves into the exponent, as it should
    return static_cast<unsigned short>(sign | h);
  }
  if (a < 0x33000000u) return static_cast<unsigned short>(sign);  // below 2^-25: zero (2^-25 itself ties to 0)
  unsigned e = a >> 23;
  unsigned mant = (a & 0x7fffffu) | 0x800000u;
  unsigned shift = 126u - e;  // units of 2^-24
  unsigned h = mant >> shift;
  unsigned rem = mant & ((1u << shift) - 1u);
  unsigned half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) h++;
  return static_cast<unsigned short>(sign | h);
}

/** Element i of a tensor of `dtype` (f32, f16 or bf16), widened to f32. */
TP_HD float load_as_f32(const void* p, long long i, int dtype) {
  if (dtype == BF16) return bf16_to_f32(static_cast<const unsigned short*>(p)[i]);
  if (dtype == F16) return f16_to_f32(static_cast<const unsigned short*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

/** Store f32 `v` as element i of a tensor of `dtype` (rounded to nearest even). */
TP_HD void store_from_f32(void* p, long long i, int dtype, float v) {
  if (dtype == BF16) static_cast<unsigned short*>(p)[i] = f32_to_bf16(v);
  else if (dtype == F16) static_cast<unsigned short*>(p)[i] = f32_to_f16(v);
  else static_cast<float*>(p)[i] = v;
}

// ───────────────────────────── activations ─────────────────────────────

TP_HD float sigmoid_f(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

TP_HD float activation_f(float x, int kind) {
  switch (kind) {
    case SILU:
      return x * sigmoid_f(x);
    case GELU:
      return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case GELU_TANH: {
      float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + tanhf(inner));
    }
    case RELU:
      return x > 0.0f ? x : 0.0f;
    case GELU_QUICK:
      return x * sigmoid_f(1.702f * x);
    case SIGMOID:
      return sigmoid_f(x);
    default:
      return x;
  }
}

TP_HD float clamp_f(float x, float limit) { return x < -limit ? -limit : (x > limit ? limit : x); }

TP_HD float softcap_f(float s, float cap) { return cap * tanhf(s / cap); }

// ───────────────────────────── norms ─────────────────────────────

/** One normalised element: (x - mean) · inv, times the weight (1 + weight with plusOne), plus the bias. */
TP_HD float norm_apply(float x, float mean, float inv, const void* weight, int weightDtype, const void* bias, int biasDtype, int i, int plusOne) {
  float v = (x - mean) * inv;
  if (weight) {
    float w = load_as_f32(weight, i, weightDtype);
    v *= plusOne ? 1.0f + w : w;
  }
  if (bias) v += load_as_f32(bias, i, biasDtype);
  return v;
}

/** 1 / sqrt(Σ(x - mean)² / width + eps), from the sum of squared deviations. */
TP_HD float norm_inverse(float squares, int width, float eps) { return 1.0f / sqrtf(squares / static_cast<float>(width) + eps); }

// ───────────────────────────── positions ─────────────────────────────

/**
 * Rotate the pair (a, b) by angle fround(position · invFreq), cos and sin times `scale`: the angle is
 * the f32 product (as the reference and transformers round it), cos/sin in f64.
 */
TP_HD void rotary_pair(float a, float b, int position, float invFreq, float scale, float* outA, float* outB) {
  float angle = static_cast<float>(position) * invFreq;
  double c = cos(static_cast<double>(angle)) * scale;
  double s = sin(static_cast<double>(angle)) * scale;
  *outA = static_cast<float>(a * c - b * s);
  *outB = static_cast<float>(b * c + a * s);
}

/** Element `col` of the sinusoidal row for `position`: [sin | cos] halves; kind 0 fairseq, 1 marian. */
TP_HD float sinusoidal_f(int position, int col, int dim, int kind) {
  int half = dim / 2;
  int i = col < half ? col : col - half;
  double angle;
  if (kind == 0) {
    float freq = static_cast<float>(exp(-9.210340371976184 * i / (half - 1)));  // ln(10000)
    angle = static_cast<double>(static_cast<float>(position) * freq);
  } else {
    angle = position / pow(10000.0, 2.0 * i / dim);
  }
  return static_cast<float>(col < half ? sin(angle) : cos(angle));
}

// ───────────────────────────── attention ─────────────────────────────

/** Whether key slot j is visible to the query at timeline slot `slot`. */
TP_HD bool attention_visible(int j, int slot, int maskValue, int causal, int window) {
  if (maskValue == 0) return false;
  if (!causal) return true;
  if (j > slot) return false;
  return window <= 0 || j > slot - window;
}

/** The score of one key from q·k: scale, ALiBi (scaled or added), soft cap, then the additive bias. */
TP_HD float attention_score(float dot, float scale, int hasAlibi, float slope, int keyPosition, int alibiScaled, float softcap, float bias) {
  float s;
  if (hasAlibi) {
    float term = slope * static_cast<float>(keyPosition);
    s = alibiScaled ? (dot + term) * scale : dot * scale + term;
  } else {
    s = dot * scale;
  }
  if (softcap > 0.0f) s = softcap_f(s, softcap);
  return s + bias;
}

/**
 * Whether an additive bias entry masks its key as padding does (interface version 3: ≤ -1e30, which
 * includes -Infinity). Such a key gets weight 0, and a query left without keys outputs zeros, rather
 * than a softmax over scores that are all near -1e30 (which would weigh them equally).
 */
TP_HD bool attention_bias_masks(float bias) { return bias <= -1e30f; }

/** The relative-position table row for an index, clamped into [0, positions) (the host checks what it can). */
TP_HD int relative_row(int index, int positions) { return index < 0 ? 0 : (index >= positions ? positions - 1 : index); }

/** 1 / max(‖x‖, 1e-12) from Σx²: torch.nn.functional.normalize's divisor (eps 1e-12), inverted. */
TP_HD float l2_inverse(float squares) {
  float n = sqrtf(squares);
  return 1.0f / (n > 1e-12f ? n : 1e-12f);
}

/**
 * YOSO's expected LSH collision weight of one key (transformers' YosoCumulation): (1 − acos(q̂·k̂)/π)^bits,
 * from q̂·k (q already normalized) and Σk² (k normalized here, as F.normalize does: divided by
 * max(‖k‖, 1e-12)). The cosine is clamped into [-1, 1]: rounding may push q̂·k̂ of parallel vectors
 * past 1, where acos has no value.
 */
TP_HD float expectation_weight(float qHatDotK, float keySquares, int bits) {
  float c = qHatDotK * l2_inverse(keySquares);
  c = c > 1.0f ? 1.0f : (c < -1.0f ? -1.0f : c);
  return powf(1.0f - acosf(c) * 0.318309886183790672f, static_cast<float>(bits));  // 1/π
}

/** Negative infinity without a header. */
TP_HD float neg_inf() { return bits_f32(0xff800000u); }

/**
 * Merge weight of a partial softmax whose running maximum is m into the global maximum M:
 * exp(m - M), 0 for a part that saw no key.
 */
TP_HD float merge_weight(float m, float M) { return m == neg_inf() ? 0.0f : expf(m - M); }

// ───────────────────────────── selection ─────────────────────────────

/** (va, ia) comes before (vb, ib): the larger value, the lower index on ties. */
TP_HD bool ranks_before(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

/**
 * MoE routing of one row: the top k experts by logit (softmax is monotonic; lower index first on
 * ties) and their softmax probabilities, renormalised over the k when asked.
 */
TP_HD void route_row(const float* logits, int experts, int topK, int normalize, int* outExperts, float* outWeights) {
  float max = logits[0];
  for (int e = 1; e < experts; e++) max = logits[e] > max ? logits[e] : max;
  float total = 0.0f;
  for (int e = 0; e < experts; e++) total += expf(logits[e] - max);
  float prevV = 0.0f;
  int prevI = -1;
  float chosen = 0.0f;
  for (int k = 0; k < topK; k++) {
    int best = -1;
    for (int e = 0; e < experts; e++) {
      if (prevI >= 0 && !ranks_before(prevV, prevI, logits[e], e)) continue;  // already taken
      if (best < 0 || ranks_before(logits[e], e, logits[best], best)) best = e;
    }
    outExperts[k] = best;
    outWeights[k] = expf(logits[best] - max) / total;
    chosen += outWeights[k];
    prevV = logits[best];
    prevI = best;
  }
  if (normalize)
    for (int k = 0; k < topK; k++) outWeights[k] /= chosen;
}

}  // namespace tpk

// Every CUDA kernel of the backend. Compiled at `pnpm build` by nvcc into one fatbin (SASS sm_80 and
// sm_90, PTX compute_90; scripts/build-native.mjs) and loaded with cuModuleLoadData. No CUDA header
// is included: weights in f16/bf16 are read as 16-bit integers and widened by hand (math.cuh), and
// all arithmetic is f32. Activations are f32 [rows, features], weights [out, in], KV caches
// [batch, capacity, kvHeads · width] in their storage dtype.
//
// The parameter list of every kernel is mirrored in src/kernels.ts (KERNELS); test/fatbin.test.ts
// checks the two against the PTX, so a change here that is not made there fails the tests.
#include "math.cuh"

using namespace tpk;

#define KERNEL extern "C" __global__

// ───────────────────────────── reductions ─────────────────────────────

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Sum over the block; every thread gets it. `scratch` holds 32 floats. */
__device__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // a previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < warps ? scratch[lane] : 0.0f;
    t = warp_sum(t);
    if (lane == 0) scratch[0] = t;
  }
  __syncthreads();
  return scratch[0];
}

__device__ float block_max(float v, float* scratch) {
  v = warp_max(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < warps ? scratch[lane] : neg_inf();
    t = warp_max(t);
    if (lane == 0) scratch[0] = t;
  }
  __syncthreads();
  return scratch[0];
}

/** The (value, index) pair that ranks first (larger value, lower index on ties) over the block. */
__device__ void block_best(float& v, int& i, float* vs, int* is) {
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, v, o);
    int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi >= 0 && (i < 0 || ranks_before(ov, oi, v, i))) {
      v = ov;
      i = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) {
    vs[warp] = v;
    is[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    float tv = lane < warps ? vs[lane] : 0.0f;
    int ti = lane < warps ? is[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, tv, o);
      int oi = __shfl_xor_sync(0xffffffffu, ti, o);
      if (oi >= 0 && (ti < 0 || ranks_before(ov, oi, tv, ti))) {
        tv = ov;
        ti = oi;
      }
    }
    if (lane == 0) {
      vs[0] = tv;
      is[0] = ti;
    }
  }
  __syncthreads();
  v = vs[0];
  i = is[0];
}

// ───────────────────────────── decode GEMV (M ≤ 8) ─────────────────────────────

struct alignas(16) Vec16 {
  unsigned a, b, c, d;
};

/** f16 → f32 on the device: the hardware conversion (exact, like math.cuh's f16_to_f32). */
__device__ __forceinline__ float half_bits_to_f32(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

template <int DT>
struct WeightVec;

template <>
struct WeightVec<F32> {
  static constexpr int N = 4;
  static constexpr int BYTES = 4;
  __device__ static void unpack(const Vec16& r, float* w) {
    w[0] = __uint_as_float(r.a);
    w[1] = __uint_as_float(r.b);
    w[2] = __uint_as_float(r.c);
    w[3] = __uint_as_float(r.d);
  }
  __device__ static float one(const void* p, long long i) { return static_cast<const float*>(p)[i]; }
};

template <>
struct WeightVec<BF16> {
  static constexpr int N = 8;
  static constexpr int BYTES = 2;
  __device__ static void unpack(const Vec16& r, float* w) {
    const unsigned words[4] = {r.a, r.b, r.c, r.d};
#pragma unroll
    for (int q = 0; q < 4; q++) {
      w[2 * q] = __uint_as_float(words[q] << 16);
      w[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
    }
  }
  __device__ static float one(const void* p, long long i) { return bf16_to_f32(static_cast<const unsigned short*>(p)[i]); }
};

template <>
struct WeightVec<F16> {
  static constexpr int N = 8;
  static constexpr int BYTES = 2;
  __device__ static void unpack(const Vec16& r, float* w) {
    const unsigned words[4] = {r.a, r.b, r.c, r.d};
#pragma unroll
    for (int q = 0; q < 4; q++) {
      w[2 * q] = half_bits_to_f32(static_cast<unsigned short>(words[q] & 0xffffu));
      w[2 * q + 1] = half_bits_to_f32(static_cast<unsigned short>(words[q] >> 16));
    }
  }
  __device__ static float one(const void* p, long long i) { return half_bits_to_f32(static_cast<const unsigned short*>(p)[i]); }
};

constexpr int GEMV_MAX_M = 8;
constexpr int GEMV_ROWS = 8;  // one warp per output row, 8 warps per block

/**
 * y[m, n] = Σ_k x[m, k] · w[n, k] over k in this block's split [blockIdx.y · kChunk, +kChunk).
 * One warp per weight row; each lane streams 16-byte loads of the row (4 f32 or 8 half values) and
 * keeps M sums. With one split, `out` is y and the bias is added; with several, `out` is the
 * partial buffer [splits, M, N] and splitk_reduce finishes.
 */
template <int DT>
__device__ void gemv(float* out, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N, int kChunk) {
  using V = WeightVec<DT>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = blockIdx.x * GEMV_ROWS + warp;
  if (n >= N) return;
  const int k0 = blockIdx.y * kChunk;
  const int k1 = min(K, k0 + kChunk);
  float acc[GEMV_MAX_M];
#pragma unroll
  for (int m = 0; m < GEMV_MAX_M; m++) acc[m] = 0.0f;
  const char* row = static_cast<const char*>(w) + static_cast<long long>(n) * K * V::BYTES;
  const bool vectorised = (static_cast<long long>(K) * V::BYTES) % 16 == 0 && kChunk % V::N == 0;
  if (vectorised) {
#pragma unroll 4
    for (int k = k0 + lane * V::N; k < k1; k += 32 * V::N) {
      const uint4 r4 = __ldg(reinterpret_cast<const uint4*>(row + static_cast<long long>(k) * V::BYTES));
      const Vec16 raw{r4.x, r4.y, r4.z, r4.w};
      float wv[V::N];
      V::unpack(raw, wv);
#pragma unroll
      for (int m = 0; m < GEMV_MAX_M; m++) {
        if (m >= M) break;
        const float4* xv = reinterpret_cast<const float4*>(x + static_cast<long long>(m) * K + k);
        float s = acc[m];
#pragma unroll
        for (int q = 0; q < V::N / 4; q++) {
          const float4 xq = __ldg(xv + q);
          s = fmaf(xq.x, wv[4 * q], s);
          s = fmaf(xq.y, wv[4 * q + 1], s);
          s = fmaf(xq.z, wv[4 * q + 2], s);
          s = fmaf(xq.w, wv[4 * q + 3], s);
        }
        acc[m] = s;
      }
    }
  } else {
    for (int k = k0 + lane; k < k1; k += 32) {
      const float wk = V::one(w, static_cast<long long>(n) * K + k);
#pragma unroll
      for (int m = 0; m < GEMV_MAX_M; m++) {
        if (m >= M) break;
        acc[m] = fmaf(x[static_cast<long long>(m) * K + k], wk, acc[m]);
      }
    }
  }
  const bool split = gridDim.y > 1;
#pragma unroll
  for (int m = 0; m < GEMV_MAX_M; m++) {
    if (m >= M) break;
    const float s = warp_sum(acc[m]);
    if (lane == 0) {
      if (split) out[(static_cast<long long>(blockIdx.y) * M + m) * N + n] = s;
      else out[static_cast<long long>(m) * N + n] = s + (bias ? load_as_f32(bias, n, biasDtype) : 0.0f);
    }
  }
}

KERNEL void tp_gemv_f32(float* out, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N, int kChunk) {
  gemv<F32>(out, x, w, bias, biasDtype, M, K, N, kChunk);
}
KERNEL void tp_gemv_f16(float* out, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N, int kChunk) {
  gemv<F16>(out, x, w, bias, biasDtype, M, K, N, kChunk);
}
KERNEL void tp_gemv_bf16(float* out, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N, int kChunk) {
  gemv<BF16>(out, x, w, bias, biasDtype, M, K, N, kChunk);
}

/** y[m, n] = Σ_s partial[s, m, n] (+ bias[n]), the splits summed in order. */
KERNEL void tp_splitk_reduce(float* y, const float* partial, const void* bias, int biasDtype, int M, int N, int splits) {
  const long long total = static_cast<long long>(M) * N;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int p = 0; p < splits; p++) s += partial[p * total + i];
    if (bias) s += load_as_f32(bias, i % N, biasDtype);
    y[i] = s;
  }
}

// ───────────────────────────── GEMM (M > 8) ─────────────────────────────

constexpr int GEMM_TILE = 64;
constexpr int GEMM_K = 16;

/**
 * y = x · wᵀ (+ bias) for any M: 64 × 64 output tiles, 256 threads of 4 × 4 outputs each, the weight
 * tile widened to f32 in shared memory. f32 throughout (the precise path for prefill; cuBLASLt is the
 * fast one, see src/linear.ts).
 */
template <int DT>
__device__ void gemm(float* y, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N) {
  using V = WeightVec<DT>;
  __shared__ float xs[GEMM_K][GEMM_TILE + 1];
  __shared__ float ws[GEMM_K][GEMM_TILE + 1];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * GEMM_TILE, n0 = blockIdx.x * GEMM_TILE;
  float acc[4][4] = {};
  for (int kt = 0; kt < K; kt += GEMM_K) {
    for (int e = tid; e < GEMM_TILE * GEMM_K; e += blockDim.x) {
      const int r = e / GEMM_K, c = e % GEMM_K;
      const int m = m0 + r, n = n0 + r, k = kt + c;
      xs[c][r] = (m < M && k < K) ? x[static_cast<long long>(m) * K + k] : 0.0f;
      ws[c][r] = (n < N && k < K) ? V::one(w, static_cast<long long>(n) * K + k) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < GEMM_K; c++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = xs[c][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) b[j] = ws[c][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int n = n0 + tx * 4 + j;
      if (n < N) y[static_cast<long long>(m) * N + n] = acc[i][j] + (bias ? load_as_f32(bias, n, biasDtype) : 0.0f);
    }
  }
}

KERNEL void tp_gemm_f32(float* y, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N) {
  gemm<F32>(y, x, w, bias, biasDtype, M, K, N);
}
KERNEL void tp_gemm_f16(float* y, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N) {
  gemm<F16>(y, x, w, bias, biasDtype, M, K, N);
}
KERNEL void tp_gemm_bf16(float* y, const float* x, const void* w, const void* bias, int biasDtype, int M, int K, int N) {
  gemm<BF16>(y, x, w, bias, biasDtype, M, K, N);
}

/** x = hi + lo with hi = bf16(x), lo = bf16(x - hi): two bf16 GEMMs then carry ~16 bits of x. */
KERNEL void tp_split_bf16(unsigned short* hi, unsigned short* lo, const float* x, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const unsigned short h = f32_to_bf16(x[i]);
    hi[i] = h;
    lo[i] = f32_to_bf16(x[i] - bf16_to_f32(h));
  }
}

/** y[m, n] += bias[n] (after a cuBLASLt GEMM). */
KERNEL void tp_add_bias(float* y, const void* bias, int biasDtype, int M, int N) {
  const long long total = static_cast<long long>(M) * N;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long long>(gridDim.x) * blockDim.x)
    y[i] += load_as_f32(bias, i % N, biasDtype);
}

// ───────────────────────────── embedding, positions ─────────────────────────────

/** y[i] = table[ids[i] - rowOffset] · scale, zeros for ids outside the table. One block per id. */
KERNEL void tp_embedding(float* y, const void* table, int tableDtype, const int* ids, int rows, int dim, int rowOffset, float scale) {
  const int i = blockIdx.x;
  const int r = ids[i] - rowOffset;
  const bool inside = r >= 0 && r < rows;
  for (int c = threadIdx.x; c < dim; c += blockDim.x)
    y[static_cast<long long>(i) * dim + c] = inside ? load_as_f32(table, static_cast<long long>(r) * dim + c, tableDtype) * scale : 0.0f;
}

/** Sinusoidal rows [sin | cos] for positions[i]; kind 0 fairseq, 1 marian. One block per position. */
KERNEL void tp_sinusoidal(float* y, const int* positions, int dim, int kind) {
  const int i = blockIdx.x;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) y[static_cast<long long>(i) * dim + c] = sinusoidal_f(positions[i], c, dim, kind);
}

/** Rotate x [rows, heads · headDim] in place: one thread per (row, head, pair). */
KERNEL void tp_rotary(float* x, const int* positions, const float* invFreq, int rows, int heads, int headDim, int rotaryDim, int interleaved, float scale) {
  const int half = rotaryDim / 2;
  const long long total = static_cast<long long>(rows) * heads * half;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(e % half);
    const long long rh = e / half;
    const int r = static_cast<int>(rh / heads);
    float* head = x + rh * headDim;
    const int a = interleaved ? 2 * i : i;
    const int b = interleaved ? 2 * i + 1 : i + half;
    float outA, outB;
    rotary_pair(head[a], head[b], positions[r], invFreq[i], scale, &outA, &outB);
    head[a] = outA;
    head[b] = outB;
  }
}

// ───────────────────────────── norms ─────────────────────────────

/**
 * RMS or layer norm of each `width`-wide group: one block per group (rows · groups blocks). Layer
 * norm subtracts the mean; both use the biased variance of the (centred) values.
 */
KERNEL void tp_norm(float* y, const float* x, const void* weight, int weightDtype, const void* bias, int biasDtype, int width, int layer, float eps, int plusOne) {
  __shared__ float scratch[32];
  const long long o = static_cast<long long>(blockIdx.x) * width;
  float mean = 0.0f;
  if (layer) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) s += x[o + i];
    mean = block_sum(s, scratch) / static_cast<float>(width);
  }
  float sq = 0.0f;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    const float d = x[o + i] - mean;
    sq = fmaf(d, d, sq);
  }
  const float inv = norm_inverse(block_sum(sq, scratch), width, eps);
  for (int i = threadIdx.x; i < width; i += blockDim.x) y[o + i] = norm_apply(x[o + i], mean, inv, weight, weightDtype, bias, biasDtype, i, plusOne);
}

// ───────────────────────────── elementwise ─────────────────────────────

/** y[i] = a[i] + b[i % bLength] (y may be a: addInPlace). */
KERNEL void tp_add(float* y, const float* a, const float* b, long long n, long long bLength) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long long>(gridDim.x) * blockDim.x)
    y[i] = a[i] + b[bLength == n ? i : i % bLength];
}

/** y[i] = op(x[i]): an activation (codes of math.cuh's Act), 7 = scale by param, 8 = clamp to ±param. */
KERNEL void tp_unary(float* y, const float* x, long long n, int op, float param) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = op == 7 ? v * param : op == 8 ? clamp_f(v, param) : activation_f(v, op);
  }
}

/** y[r, c] = act(gate[r · stride + c]) · up[r · stride + c]. */
KERNEL void tp_gated(float* y, const float* gate, const float* up, int rows, int cols, int stride, int kind) {
  const long long total = static_cast<long long>(rows) * cols;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = e / cols, c = e % cols;
    y[e] = activation_f(gate[r * stride + c], kind) * up[r * stride + c];
  }
}

// ───────────────────────────── layout ─────────────────────────────

/** dst[r, dstOffset + c] = src[r, srcOffset + c] for c < width: 4-byte elements (f32 or i32). */
KERNEL void tp_copy_columns(unsigned* dst, int dstCols, int dstOffset, const unsigned* src, int srcCols, int srcOffset, int rows, int width) {
  const long long total = static_cast<long long>(rows) * width;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = e / width, c = e % width;
    dst[r * dstCols + dstOffset + c] = src[r * srcCols + srcOffset + c];
  }
}

/** y[i] = x[rows[i]]. */
KERNEL void tp_gather_rows(float* y, const float* x, const int* rows, int n, int cols) {
  const long long total = static_cast<long long>(n) * cols;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i = e / cols, c = e % cols;
    y[e] = x[static_cast<long long>(rows[i]) * cols + c];
  }
}

/** target[rows[i]] += weights[i] · src[i] (rows may repeat: atomic adds). */
KERNEL void tp_scatter_add_rows(float* target, const float* src, const int* rows, const float* weights, int n, int cols) {
  const long long total = static_cast<long long>(n) * cols;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long i = e / cols, c = e % cols;
    atomicAdd(target + static_cast<long long>(rows[i]) * cols + c, weights[i] * src[e]);
  }
}

// ───────────────────────────── selection, routing ─────────────────────────────

/** y[r] = the index of the largest value of row r (the first on ties). One block per row. */
KERNEL void tp_argmax(int* y, const float* x, int cols) {
  __shared__ float vs[32];
  __shared__ int is[32];
  const float* row = x + static_cast<long long>(blockIdx.x) * cols;
  float v = 0.0f;
  int i = -1;
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    if (i < 0 || ranks_before(row[c], c, v, i)) {
      v = row[c];
      i = c;
    }
  block_best(v, i, vs, is);
  if (threadIdx.x == 0) y[blockIdx.x] = i;
}

/**
 * The k best of each row, best first (lower index first on ties): k passes, each taking the best
 * element ranked after the previous pick. One block per row.
 */
KERNEL void tp_topk(float* values, int* indices, const float* x, int cols, int k) {
  __shared__ float vs[32];
  __shared__ int is[32];
  const float* row = x + static_cast<long long>(blockIdx.x) * cols;
  float prevV = 0.0f;
  int prevI = -1;
  for (int p = 0; p < k; p++) {
    float v = 0.0f;
    int i = -1;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xc = row[c];
      if (prevI >= 0 && !ranks_before(prevV, prevI, xc, c)) continue;
      if (i < 0 || ranks_before(xc, c, v, i)) {
        v = xc;
        i = c;
      }
    }
    block_best(v, i, vs, is);
    if (threadIdx.x == 0) {
      values[static_cast<long long>(blockIdx.x) * k + p] = v;
      indices[static_cast<long long>(blockIdx.x) * k + p] = i;
    }
    prevV = v;
    prevI = i;
  }
}

/** MoE routing, one thread per row (math.cuh's route_row). */
KERNEL void tp_route(int* experts, float* weights, const float* logits, int rows, int numExperts, int topK, int normalize) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows)
    route_row(logits + static_cast<long long>(r) * numExperts, numExperts, topK, normalize, experts + static_cast<long long>(r) * topK,
              weights + static_cast<long long>(r) * topK);
}

/** out[r] = the routing weight of expert e for row r (0 when not chosen); rows[r] = r. */
KERNEL void tp_expert_weights(float* out, int* rowIds, const int* experts, const float* weights, int rows, int topK, int e) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float w = 0.0f;
  for (int k = 0; k < topK; k++)
    if (experts[r * topK + k] == e) w += weights[r * topK + k];
  out[r] = w;
  rowIds[r] = r;
}

// ───────────────────────────── KV cache, attention ─────────────────────────────

/** cache[b, start + t, :] = src[b · rows + t, :] in the cache's dtype. */
KERNEL void tp_kv_append(void* cache, int cacheDtype, const float* src, int batch, int rows, int start, int capacity, int width) {
  const long long total = static_cast<long long>(batch) * rows * width;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total; e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long c = e % width, bt = e / width;
    const long long b = bt / rows, t = bt % rows;
    store_from_f32(cache, (b * capacity + start + t) * width + c, cacheDtype, src[e]);
  }
}

/** Copy `halves` 16-bit words per sequence from a cache of pitch srcPitch to one of dstPitch (growth). */
KERNEL void tp_kv_move(unsigned short* dst, const unsigned short* src, long long halves, long long srcPitch, long long dstPitch) {
  const int b = blockIdx.y;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < halves; i += static_cast<long long>(gridDim.x) * blockDim.x)
    dst[b * dstPitch + i] = src[b * srcPitch + i];
}

/**
 * Beam search's reorder: sequence b of dst gets sequence order[b] of src (`halves` 16-bit words of
 * it, sequences `pitch` words apart). An order outside [0, batch) copies nothing (the host checks
 * the orders it uploaded; see CudaRank.reorderKvCache).
 */
KERNEL void tp_kv_reorder(unsigned short* dst, const unsigned short* src, const int* order, long long halves, long long pitch, int batch) {
  const int b = blockIdx.y;
  const int from = order[b];
  if (from < 0 || from >= batch) return;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < halves; i += static_cast<long long>(gridDim.x) * blockDim.x)
    dst[b * pitch + i] = src[from * pitch + i];
}

// Attention comes in three specialisations of one template, so the plain path pays for none of the
// version-3 additions: softmax (the default), softmax with relative-position terms (NEZHA, DeBERTa),
// and YOSO's expectation weights. All three take the same parameters (src/kernels.ts,
// ATTENTION_PARTIAL); a specialisation ignores what it does not use.
enum AttentionMode : int { ATTN_SOFTMAX = 0, ATTN_RELATIVE = 1, ATTN_EXPECTATION = 2 };

/** Row r's slice for head h of a relative table: [positions, heads · width] per head, or [positions, width] shared. */
__device__ __forceinline__ const float* relative_slice(const float* table, int perHead, int r, int h, int heads, int width) {
  return table + (perHead ? (static_cast<long long>(r) * heads + h) * width : static_cast<long long>(r) * width);
}

/**
 * One split of one query row and head (flash-decoding): the keys [split · chunk, +chunk) give a
 * running maximum m, a sum l = Σ exp(s - m) and o = Σ exp(s - m) · v; attention_merge combines the
 * splits. Grid (heads, batch · rows, splits). Dynamic shared memory: headDim + chunk floats, and
 * chunk more ints (each key's values-table row) for ATTN_RELATIVE.
 *
 * `bias` is [heads, rows, keys] (biasBatchStride 0) or [batch, heads, rows, keys] (biasBatchStride
 * heads · rows · keys); an entry ≤ -1e30 masks its key like padding. ATTN_RELATIVE adds
 * q·relKeys[r, h] + k·relQueries[r, h] to q·k before the scale and relValues[r, h] to each value,
 * r = relIndex[t, j] clamped to the table. ATTN_EXPECTATION weighs visible keys by
 * expectation_weight (q and k L2-normalized; no scale, ALiBi, soft cap, bias or relative term — the
 * bias does not mask either, as in @tp/core/testing's reference) and reports m = 0 for a split with
 * a visible key (-inf without), so that the merge adds the splits with weight 1;
 * tp_attention_merge_normalized then L2-normalizes the row.
 */
template <int MODE>
__device__ void attention_partial(float* partOut, float* partMax, float* partSum, const float* q, const void* kCache, const void* vCache, int cacheDtype,
                                  const int* keyMask, const int* keyPositions, const float* bias, long long biasBatchStride, const float* alibi,
                                  const int* relIndex, const float* relKeys, int relKeysRows, int relKeysPerHead, const float* relQueries,
                                  int relQueriesRows, int relQueriesPerHead, const float* relValues, int relValuesRows, int relValuesPerHead, int rows,
                                  int start, int keys, int capacity, int heads, int kvHeads, int headDim, int valueDim, float scale, int causal,
                                  int alibiScaled, int window, float softcap, int bits, int chunk) {
  extern __shared__ float shared[];
  __shared__ float scratch[32];
  float* qs = shared;
  float* ps = shared + headDim;
  int* valueRows = reinterpret_cast<int*>(ps + chunk);  // ATTN_RELATIVE only
  const int h = blockIdx.x;
  const int row = blockIdx.y;  // b · rows + t
  const int b = row / rows, t = row % rows;
  const int split = blockIdx.z, splits = gridDim.z;
  const int kvh = h / (heads / kvHeads);
  const int slot = start + t;
  const int j0 = split * chunk;
  const int j1 = min(keys, j0 + chunk);
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = q[(static_cast<long long>(row) * heads + h) * headDim + d];
  if (MODE == ATTN_EXPECTATION) {
    float sq = 0.0f;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) sq = fmaf(qs[d], qs[d], sq);
    const float inv = l2_inverse(block_sum(sq, scratch));  // its barriers publish qs
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] *= inv;
  }
  __syncthreads();
  const long long kRow = static_cast<long long>(kvHeads) * headDim, vRow = static_cast<long long>(kvHeads) * valueDim;
  const float* biasRow = MODE != ATTN_EXPECTATION && bias ? bias + b * biasBatchStride + (static_cast<long long>(h) * rows + t) * keys : nullptr;
  const int* indexRow = MODE == ATTN_RELATIVE ? relIndex + static_cast<long long>(t) * keys : nullptr;
  float localMax = neg_inf();
  for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
    float s = neg_inf();
    bool visible = attention_visible(j, slot, keyMask[static_cast<long long>(b) * keys + j], causal, window);
    float biasValue = 0.0f;
    if (visible && biasRow) {
      biasValue = biasRow[j];
      visible = !attention_bias_masks(biasValue);
    }
    if (visible) {
      const long long ko = (static_cast<long long>(b) * capacity + j) * kRow + static_cast<long long>(kvh) * headDim;
      if (MODE == ATTN_EXPECTATION) {
        float dot = 0.0f, kk = 0.0f;
        for (int d = 0; d < headDim; d++) {
          const float kd = load_as_f32(kCache, ko + d, cacheDtype);
          dot = fmaf(qs[d], kd, dot);
          kk = fmaf(kd, kd, kk);
        }
        s = expectation_weight(dot, kk, bits);
        localMax = 0.0f;  // a visible key, whatever its weight
      } else {
        float dot = 0.0f;
        if (MODE == ATTN_RELATIVE) {
          const int index = indexRow[j];
          const float* rk = relKeys ? relative_slice(relKeys, relKeysPerHead, relative_row(index, relKeysRows), h, heads, headDim) : nullptr;
          const float* rq = relQueries ? relative_slice(relQueries, relQueriesPerHead, relative_row(index, relQueriesRows), h, heads, headDim) : nullptr;
          for (int d = 0; d < headDim; d++) {
            const float kd = load_as_f32(kCache, ko + d, cacheDtype);
            dot = fmaf(qs[d], kd, dot);
            if (rk) dot = fmaf(qs[d], rk[d], dot);
            if (rq) dot = fmaf(kd, rq[d], dot);
          }
        } else {
          for (int d = 0; d < headDim; d++) dot = fmaf(qs[d], load_as_f32(kCache, ko + d, cacheDtype), dot);
        }
        s = attention_score(dot, scale, alibi != nullptr, alibi ? alibi[h] : 0.0f, keyPositions ? keyPositions[static_cast<long long>(b) * keys + j] : 0,
                            alibiScaled, softcap, biasValue);
        localMax = fmaxf(localMax, s);
      }
    }
    if (MODE == ATTN_RELATIVE) valueRows[j - j0] = relValues ? relative_row(indexRow[j], relValuesRows) : 0;
    ps[j - j0] = MODE == ATTN_EXPECTATION && !visible ? 0.0f : s;
  }
  const float m = block_max(localMax, scratch);
  float localSum = 0.0f;
  for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
    const float s = ps[j - j0];
    const float p = MODE == ATTN_EXPECTATION ? s : (s == neg_inf() ? 0.0f : expf(s - m));
    ps[j - j0] = p;
    localSum += p;
  }
  const float l = block_sum(localSum, scratch);  // its barriers also publish ps (and valueRows)
  const long long part = (static_cast<long long>(row) * heads + h) * splits + split;
  const long long vo = static_cast<long long>(b) * capacity * vRow + static_cast<long long>(kvh) * valueDim;
  for (int d = threadIdx.x; d < valueDim; d += blockDim.x) {
    float o = 0.0f;
    for (int j = j0; j < j1; j++) {
      const float p = ps[j - j0];
      if (p == 0.0f) continue;
      float v = load_as_f32(vCache, vo + static_cast<long long>(j) * vRow + d, cacheDtype);
      if (MODE == ATTN_RELATIVE && relValues) v += relative_slice(relValues, relValuesPerHead, valueRows[j - j0], h, heads, valueDim)[d];
      o = fmaf(p, v, o);
    }
    partOut[part * valueDim + d] = o;
  }
  if (threadIdx.x == 0) {
    partMax[part] = m;
    partSum[part] = l;
  }
}

#define ATTENTION_PARTIAL_PARAMS                                                                                                                      \
  float *partOut, float *partMax, float *partSum, const float *q, const void *kCache, const void *vCache, int cacheDtype, const int *keyMask,         \
      const int *keyPositions, const float *bias, long long biasBatchStride, const float *alibi, const int *relIndex, const float *relKeys,         \
      int relKeysRows, int relKeysPerHead, const float *relQueries, int relQueriesRows, int relQueriesPerHead, const float *relValues,              \
      int relValuesRows, int relValuesPerHead, int rows, int start, int keys, int capacity, int heads, int kvHeads, int headDim, int valueDim,      \
      float scale, int causal, int alibiScaled, int window, float softcap, int bits, int chunk
#define ATTENTION_PARTIAL_ARGS                                                                                                                         \
  partOut, partMax, partSum, q, kCache, vCache, cacheDtype, keyMask, keyPositions, bias, biasBatchStride, alibi, relIndex, relKeys, relKeysRows,     \
      relKeysPerHead, relQueries, relQueriesRows, relQueriesPerHead, relValues, relValuesRows, relValuesPerHead, rows, start, keys, capacity, heads, \
      kvHeads, headDim, valueDim, scale, causal, alibiScaled, window, softcap, bits, chunk

KERNEL void tp_attention_partial(ATTENTION_PARTIAL_PARAMS) { attention_partial<ATTN_SOFTMAX>(ATTENTION_PARTIAL_ARGS); }
KERNEL void tp_attention_partial_relative(ATTENTION_PARTIAL_PARAMS) { attention_partial<ATTN_RELATIVE>(ATTENTION_PARTIAL_ARGS); }
KERNEL void tp_attention_partial_expectation(ATTENTION_PARTIAL_PARAMS) { attention_partial<ATTN_EXPECTATION>(ATTENTION_PARTIAL_ARGS); }

/**
 * out[row, h, :] = Σ_s o_s · e^(m_s - M), then divided by Σ_s l_s · e^(m_s - M) (softmax) or, with
 * NORMALIZE (expectation scoring), by max(‖·‖, 1e-12) as transformers' F.normalize does; zeros when
 * no key was visible. One block per (row, head).
 */
template <bool NORMALIZE>
__device__ void attention_merge(float* out, const float* partOut, const float* partMax, const float* partSum, int heads, int valueDim, int splits) {
  __shared__ float scratch[32];
  const long long rh = blockIdx.x;  // row · heads + h
  float M = neg_inf();
  for (int s = 0; s < splits; s++) M = fmaxf(M, partMax[rh * splits + s]);
  float L = 0.0f;
  for (int s = 0; s < splits; s++) L += partSum[rh * splits + s] * merge_weight(partMax[rh * splits + s], M);
  float squares = 0.0f;
  for (int d = threadIdx.x; d < valueDim; d += blockDim.x) {
    float o = 0.0f;
    if (M != neg_inf())
      for (int s = 0; s < splits; s++) o += partOut[(rh * splits + s) * valueDim + d] * merge_weight(partMax[rh * splits + s], M);
    if (NORMALIZE) {
      out[rh * valueDim + d] = o;
      squares = fmaf(o, o, squares);
    } else {
      out[rh * valueDim + d] = M == neg_inf() ? 0.0f : o / L;
    }
  }
  if (NORMALIZE) {
    const float inv = l2_inverse(block_sum(squares, scratch));
    for (int d = threadIdx.x; d < valueDim; d += blockDim.x) out[rh * valueDim + d] *= inv;  // this thread's own writes
  }
}

KERNEL void tp_attention_merge(float* out, const float* partOut, const float* partMax, const float* partSum, int heads, int valueDim, int splits) {
  attention_merge<false>(out, partOut, partMax, partSum, heads, valueDim, splits);
}
KERNEL void tp_attention_merge_normalized(float* out, const float* partOut, const float* partMax, const float* partSum, int heads, int valueDim, int splits) {
  attention_merge<true>(out, partOut, partMax, partSum, heads, valueDim, splits);
}

// ───────────────────────────── collectives on one process ─────────────────────────────

/** y = Σ of up to 8 buffers (device pointers p0…p{count-1}), summed in that order. */
KERNEL void tp_reduce_sum(float* y, const float* p0, const float* p1, const float* p2, const float* p3, const float* p4, const float* p5, const float* p6,
                       const float* p7, int count, long long n) {
  const float* ps[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float s = ps[0][i];
    for (int r = 1; r < count; r++) s += ps[r][i];
    y[i] = s;
  }
}

// The tp_cuda addon: library loading and reports, device enumeration, the Context and NcclComm
// classes, and `math`, the kernels' per-element functions (kernels/math.cuh) compiled for the host
// so that tests on machines without a GPU can check them against the reference kernels.
#include "glibc.h"

#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "context.h"
#include "libs.h"
#include "math.cuh"

namespace tp {

namespace {

Lib parseLib(Napi::Env env, const Napi::Value& v) {
  std::string name = v.As<Napi::String>().Utf8Value();
  if (name == "cuda") return Lib::Cuda;
  if (name == "cublasLt") return Lib::CublasLt;
  if (name == "nccl") return Lib::Nccl;
  throw Napi::Error::New(env, "unknown library " + name + " (cuda, cublasLt, nccl)");
}

Napi::Object stateObject(Napi::Env env, const LibraryState& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("tried", Napi::Boolean::New(env, s.tried));
  o.Set("loaded", Napi::Boolean::New(env, s.loaded));
  if (s.loaded) {
    o.Set("candidate", Napi::String::New(env, s.candidate));
    o.Set("path", Napi::String::New(env, s.path));
    o.Set("version", Napi::Number::New(env, static_cast<double>(s.version)));
  }
  if (s.initStatus >= 0) o.Set("initStatus", Napi::Number::New(env, s.initStatus));
  Napi::Array attempts = Napi::Array::New(env, s.attempts.size());
  for (size_t i = 0; i < s.attempts.size(); i++) {
    Napi::Object a = Napi::Object::New(env);
    a.Set("candidate", Napi::String::New(env, s.attempts[i].candidate));
    if (!s.attempts[i].error.empty()) a.Set("error", Napi::String::New(env, s.attempts[i].error));
    attempts.Set(static_cast<uint32_t>(i), a);
  }
  o.Set("attempts", attempts);
  return o;
}

// load(library, candidates: string[]) → state (see libs.h): loads once per process
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lib lib = parseLib(env, info[0]);
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::string> candidates;
  for (uint32_t i = 0; i < list.Length(); i++) candidates.push_back(list.Get(i).As<Napi::String>().Utf8Value());
  return stateObject(env, loadLibrary(lib, candidates));
}

Napi::Value State(const Napi::CallbackInfo& info) { return stateObject(info.Env(), libraryState(parseLib(info.Env(), info[0]))); }

// dlopenCheck(path) → null when the file loads as a shared library, else dlerror's text
Napi::Value DlopenCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string error = dlopenCheck(info[0].As<Napi::String>().Utf8Value());
  return error.empty() ? env.Null() : Napi::String::New(env, error);
}

// errorName(library, status) → { name?, text? } from the loaded library
Napi::Value ErrorName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lib lib = parseLib(env, info[0]);
  int status = info[1].As<Napi::Number>().Int32Value();
  Napi::Object o = Napi::Object::New(env);
  if (lib == Lib::Cuda && driver()) {
    const char* s = nullptr;
    if (driver()->cuGetErrorName(status, &s) == CUDA_SUCCESS && s) o.Set("name", Napi::String::New(env, s));
    if (driver()->cuGetErrorString(status, &s) == CUDA_SUCCESS && s) o.Set("text", Napi::String::New(env, s));
  } else if (lib == Lib::CublasLt && cublasLt()) {
    if (cublasLt()->cublasLtGetStatusName) o.Set("name", Napi::String::New(env, cublasLt()->cublasLtGetStatusName(status)));
    if (cublasLt()->cublasLtGetStatusString) o.Set("text", Napi::String::New(env, cublasLt()->cublasLtGetStatusString(status)));
  } else if (lib == Lib::Nccl && nccl()) {
    o.Set("text", Napi::String::New(env, nccl()->ncclGetErrorString(status)));
  }
  return o;
}

// devices() → [{ index, name, memoryBytes, major, minor, multiprocessors, l2Bytes, sharedOptin, pciBusId, memoryPools }]
Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Driver* d = driver();
  if (!d) throw Napi::Error::New(env, "the CUDA driver is not loaded");
  int count = 0;
  CUresult r = d->cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS) throwStatus(env, "cuda", "cuDeviceGetCount", r);
  Napi::Array out = Napi::Array::New(env, count);
  for (int i = 0; i < count; i++) {
    CUdevice dev = 0;
    if ((r = d->cuDeviceGet(&dev, i)) != CUDA_SUCCESS) throwStatus(env, "cuda", "cuDeviceGet", r);
    char name[256] = {0};
    d->cuDeviceGetName(name, sizeof(name) - 1, dev);
    size_t total = 0;
    d->cuDeviceTotalMem(&total, dev);
    auto attr = [&](int a) {
      int v = 0;
      d->cuDeviceGetAttribute(&v, a, dev);
      return v;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, i));
    o.Set("name", Napi::String::New(env, name));
    o.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(total)));
    o.Set("major", Napi::Number::New(env, attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)));
    o.Set("minor", Napi::Number::New(env, attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)));
    o.Set("multiprocessors", Napi::Number::New(env, attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)));
    o.Set("l2Bytes", Napi::Number::New(env, attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)));
    o.Set("sharedOptin", Napi::Number::New(env, attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)));
    o.Set("memoryPools", Napi::Boolean::New(env, attr(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED) != 0));
    char bus[32];
    std::snprintf(bus, sizeof(bus), "%04x:%02x:%02x", attr(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID), attr(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID),
                  attr(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID));
    o.Set("pciBusId", Napi::String::New(env, bus));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// ncclUniqueId() → Uint8Array(128), made on the coordinator and handed to every rank
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl* n = nccl();
  if (!n) throw Napi::Error::New(env, "NCCL is not loaded");
  ncclUniqueId id;
  int r = n->ncclGetUniqueId(&id);
  if (r != ncclSuccess) throwStatus(env, "nccl", "ncclGetUniqueId", r);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, NCCL_UNIQUE_ID_BYTES);
  std::memcpy(out.Data(), id.internal, NCCL_UNIQUE_ID_BYTES);
  return out;
}

// ───────────────────────────── math (host build of kernels/math.cuh) ─────────────────────────────

Napi::Float32Array f32Array(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

Napi::Value Bf16ToF32(const Napi::CallbackInfo& info) {
  auto in = info[0].As<Napi::Uint16Array>();
  auto out = f32Array(info.Env(), in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); i++) out[i] = tpk::bf16_to_f32(in[i]);
  return out;
}
Napi::Value F16ToF32(const Napi::CallbackInfo& info) {
  auto in = info[0].As<Napi::Uint16Array>();
  auto out = f32Array(info.Env(), in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); i++) out[i] = tpk::f16_to_f32(in[i]);
  return out;
}
Napi::Value F32ToBf16(const Napi::CallbackInfo& info) {
  auto in = info[0].As<Napi::Float32Array>();
  auto out = Napi::Uint16Array::New(info.Env(), in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); i++) out[i] = tpk::f32_to_bf16(in[i]);
  return out;
}
Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
  auto in = info[0].As<Napi::Float32Array>();
  auto out = Napi::Uint16Array::New(info.Env(), in.ElementLength());
  for (size_t i = 0; i < in.ElementLength(); i++) out[i] = tpk::f32_to_f16(in[i]);
  return out;
}

// activation(x, kind) with math.cuh's codes (6 = sigmoid)
Napi::Value Activation(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  int kind = info[1].As<Napi::Number>().Int32Value();
  auto out = f32Array(info.Env(), x.ElementLength());
  for (size_t i = 0; i < x.ElementLength(); i++) out[i] = tpk::activation_f(x[i], kind);
  return out;
}

Napi::Value Softcap(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  float cap = static_cast<float>(info[1].As<Napi::Number>().DoubleValue());
  auto out = f32Array(info.Env(), x.ElementLength());
  for (size_t i = 0; i < x.ElementLength(); i++) out[i] = tpk::softcap_f(x[i], cap);
  return out;
}

// rotary(x, positions: Int32Array, invFreq, heads, headDim, rotaryDim, interleaved, scale)
Napi::Value Rotary(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  auto positions = info[1].As<Napi::Int32Array>();
  auto inv = info[2].As<Napi::Float32Array>();
  int heads = info[3].As<Napi::Number>().Int32Value(), headDim = info[4].As<Napi::Number>().Int32Value();
  int rotaryDim = info[5].As<Napi::Number>().Int32Value(), interleaved = info[6].As<Napi::Number>().Int32Value();
  float scale = static_cast<float>(info[7].As<Napi::Number>().DoubleValue());
  auto out = f32Array(info.Env(), x.ElementLength());
  for (size_t i = 0; i < x.ElementLength(); i++) out[i] = x[i];
  int half = rotaryDim / 2;
  for (size_t r = 0; r < positions.ElementLength(); r++)
    for (int h = 0; h < heads; h++)
      for (int i = 0; i < half; i++) {
        size_t o = (r * heads + h) * headDim;
        size_t a = o + (interleaved ? 2 * i : i), b = o + (interleaved ? 2 * i + 1 : i + half);
        float oa, ob;
        tpk::rotary_pair(x[a], x[b], positions[r], inv[i], scale, &oa, &ob);
        out[a] = oa;
        out[b] = ob;
      }
  return out;
}

// sinusoidal(positions: Int32Array, dim, kind 0 fairseq | 1 marian)
Napi::Value Sinusoidal(const Napi::CallbackInfo& info) {
  auto positions = info[0].As<Napi::Int32Array>();
  int dim = info[1].As<Napi::Number>().Int32Value(), kind = info[2].As<Napi::Number>().Int32Value();
  auto out = f32Array(info.Env(), positions.ElementLength() * dim);
  for (size_t r = 0; r < positions.ElementLength(); r++)
    for (int c = 0; c < dim; c++) out[r * dim + c] = tpk::sinusoidal_f(positions[r], c, dim, kind);
  return out;
}

// norm(x, width, layer, eps, plusOne, weight?: Float32Array, bias?: Float32Array): the kernel's math, serially
Napi::Value Norm(const Napi::CallbackInfo& info) {
  auto x = info[0].As<Napi::Float32Array>();
  int width = info[1].As<Napi::Number>().Int32Value(), layer = info[2].As<Napi::Number>().Int32Value();
  float eps = static_cast<float>(info[3].As<Napi::Number>().DoubleValue());
  int plusOne = info[4].As<Napi::Number>().Int32Value();
  const float* w = info[5].IsTypedArray() ? info[5].As<Napi::Float32Array>().Data() : nullptr;
  const float* b = info[6].IsTypedArray() ? info[6].As<Napi::Float32Array>().Data() : nullptr;
  auto out = f32Array(info.Env(), x.ElementLength());
  size_t rows = x.ElementLength() / width;
  for (size_t r = 0; r < rows; r++) {
    const float* row = x.Data() + r * width;
    float mean = 0.0f;
    if (layer) {
      for (int i = 0; i < width; i++) mean += row[i];
      mean /= static_cast<float>(width);
    }
    float sq = 0.0f;
    for (int i = 0; i < width; i++) sq += (row[i] - mean) * (row[i] - mean);
    float inv = tpk::norm_inverse(sq, width, eps);
    for (int i = 0; i < width; i++) out[r * width + i] = tpk::norm_apply(row[i], mean, inv, w, tpk::F32, b, tpk::F32, i, plusOne);
  }
  return out;
}

/**
 * attention({ q, kCache, vCache, keyMask, keyPositions?, bias?, biasPerSequence?, alibi?, batch, rows,
 * start, keys, capacity, heads, kvHeads, headDim, valueDim, scale, causal, alibiScaled, window, softcap,
 * chunk, relIndex?, relKeys?, relQueries?, relValues? (each { data, positions, perHead }), bits? }):
 * the split-and-merge of attention_partial / attention_merge, serially, with the same functions —
 * relative terms when a table is given, YOSO's expectation weights (and the normalized merge) when
 * bits ≥ 1.
 */
struct HostTable {
  const float* data = nullptr;
  int positions = 0;
  int perHead = 0;
  const float* slice(int index, int h, int heads, int width) const {
    int r = tpk::relative_row(index, positions);
    return data + (perHead ? (static_cast<size_t>(r) * heads + h) * width : static_cast<size_t>(r) * width);
  }
};

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Object a = info[0].As<Napi::Object>();
  auto num = [&](const char* k) { return a.Get(k).IsNumber() ? a.Get(k).As<Napi::Number>().DoubleValue() : 0.0; };
  auto f32 = [&](const char* k) -> const float* { return a.Get(k).IsTypedArray() ? a.Get(k).As<Napi::Float32Array>().Data() : nullptr; };
  auto i32 = [&](const char* k) -> const int* { return a.Get(k).IsTypedArray() ? a.Get(k).As<Napi::Int32Array>().Data() : nullptr; };
  auto table = [&](const char* k) {
    HostTable t;
    if (!a.Get(k).IsObject()) return t;
    Napi::Object o = a.Get(k).As<Napi::Object>();
    t.data = o.Get("data").As<Napi::Float32Array>().Data();
    t.positions = o.Get("positions").As<Napi::Number>().Int32Value();
    t.perHead = o.Get("perHead").ToBoolean() ? 1 : 0;
    return t;
  };
  const float *q = f32("q"), *kc = f32("kCache"), *vc = f32("vCache"), *bias = f32("bias"), *alibi = f32("alibi");
  const int *mask = i32("keyMask"), *positions = i32("keyPositions"), *relIndex = i32("relIndex");
  const HostTable relKeys = table("relKeys"), relQueries = table("relQueries"), relValues = table("relValues");
  int batch = num("batch"), rows = num("rows"), start = num("start"), keys = num("keys"), capacity = num("capacity");
  int heads = num("heads"), kvHeads = num("kvHeads"), headDim = num("headDim"), valueDim = num("valueDim");
  float scale = num("scale"), softcap = num("softcap");
  int causal = num("causal"), alibiScaled = num("alibiScaled"), window = num("window"), chunk = num("chunk"), bits = num("bits");
  const bool expectation = bits >= 1;
  const bool relative = !expectation && relIndex != nullptr && (relKeys.data || relQueries.data || relValues.data);
  const size_t biasBatchStride = a.Get("biasPerSequence").ToBoolean() ? static_cast<size_t>(heads) * rows * keys : 0;
  int splits = (keys + chunk - 1) / chunk;
  auto out = f32Array(info.Env(), static_cast<size_t>(batch) * rows * heads * valueDim);
  std::vector<float> ps(chunk), qs(headDim), partOut(static_cast<size_t>(splits) * valueDim), partMax(splits), partSum(splits), o(valueDim);
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < rows; t++)
      for (int h = 0; h < heads; h++) {
        int kvh = h / (heads / kvHeads), slot = start + t, row = b * rows + t;
        for (int d = 0; d < headDim; d++) qs[d] = q[(static_cast<size_t>(row) * heads + h) * headDim + d];
        if (expectation) {
          float sq = 0.0f;
          for (int d = 0; d < headDim; d++) sq += qs[d] * qs[d];
          float inv = tpk::l2_inverse(sq);
          for (int d = 0; d < headDim; d++) qs[d] *= inv;
        }
        const float* biasRow = !expectation && bias ? bias + b * biasBatchStride + (static_cast<size_t>(h) * rows + t) * keys : nullptr;
        for (int s = 0; s < splits; s++) {
          int j0 = s * chunk, j1 = std::min(keys, j0 + chunk);
          float m = tpk::neg_inf();
          for (int j = j0; j < j1; j++) {
            float sc = tpk::neg_inf();
            bool visible = tpk::attention_visible(j, slot, mask[b * keys + j], causal, window);
            float biasValue = 0.0f;
            if (visible && biasRow) {
              biasValue = biasRow[j];
              visible = !tpk::attention_bias_masks(biasValue);
            }
            if (visible) {
              const float* k = kc + (static_cast<size_t>(b) * capacity + j) * kvHeads * headDim + kvh * headDim;
              float dot = 0.0f;
              if (expectation) {
                float kk = 0.0f;
                for (int d = 0; d < headDim; d++) {
                  dot += qs[d] * k[d];
                  kk += k[d] * k[d];
                }
                sc = tpk::expectation_weight(dot, kk, bits);
                m = 0.0f;
              } else {
                int index = relative ? relIndex[static_cast<size_t>(t) * keys + j] : 0;
                const float* rk = relative && relKeys.data ? relKeys.slice(index, h, heads, headDim) : nullptr;
                const float* rq = relative && relQueries.data ? relQueries.slice(index, h, heads, headDim) : nullptr;
                for (int d = 0; d < headDim; d++) {
                  dot += qs[d] * k[d];
                  if (rk) dot += qs[d] * rk[d];
                  if (rq) dot += k[d] * rq[d];
                }
                sc = tpk::attention_score(dot, scale, alibi != nullptr, alibi ? alibi[h] : 0.0f, positions ? positions[b * keys + j] : 0, alibiScaled, softcap,
                                          biasValue);
                m = sc > m ? sc : m;
              }
            }
            ps[j - j0] = expectation && !visible ? 0.0f : sc;
          }
          float l = 0.0f;
          for (int j = j0; j < j1; j++) {
            if (!expectation) ps[j - j0] = ps[j - j0] == tpk::neg_inf() ? 0.0f : expf(ps[j - j0] - m);
            l += ps[j - j0];
          }
          for (int d = 0; d < valueDim; d++) {
            float acc = 0.0f;
            for (int j = j0; j < j1; j++) {
              if (ps[j - j0] == 0.0f) continue;
              float v = vc[(static_cast<size_t>(b) * capacity + j) * kvHeads * valueDim + kvh * valueDim + d];
              if (relative && relValues.data) v += relValues.slice(relIndex[static_cast<size_t>(t) * keys + j], h, heads, valueDim)[d];
              acc += ps[j - j0] * v;
            }
            partOut[static_cast<size_t>(s) * valueDim + d] = acc;
          }
          partMax[s] = m;
          partSum[s] = l;
        }
        float M = tpk::neg_inf();
        for (int s = 0; s < splits; s++) M = partMax[s] > M ? partMax[s] : M;
        float L = 0.0f;
        for (int s = 0; s < splits; s++) L += partSum[s] * tpk::merge_weight(partMax[s], M);
        float squares = 0.0f;
        for (int d = 0; d < valueDim; d++) {
          float acc = 0.0f;
          if (M != tpk::neg_inf())
            for (int s = 0; s < splits; s++) acc += partOut[static_cast<size_t>(s) * valueDim + d] * tpk::merge_weight(partMax[s], M);
          o[d] = acc;
          squares += acc * acc;
        }
        const float inv = expectation ? tpk::l2_inverse(squares) : 0.0f;
        for (int d = 0; d < valueDim; d++)
          out[(static_cast<size_t>(row) * heads + h) * valueDim + d] = M == tpk::neg_inf() ? 0.0f : (expectation ? o[d] * inv : o[d] / L);
      }
  return out;
}

// expectationWeight(qHatDotK: Float32Array, keySquares: Float32Array, bits) → math.cuh's expectation_weight of each pair
Napi::Value ExpectationWeight(const Napi::CallbackInfo& info) {
  auto dots = info[0].As<Napi::Float32Array>();
  auto squares = info[1].As<Napi::Float32Array>();
  int bits = info[2].As<Napi::Number>().Int32Value();
  auto out = f32Array(info.Env(), dots.ElementLength());
  for (size_t i = 0; i < dots.ElementLength(); i++) out[i] = tpk::expectation_weight(dots[i], squares[i], bits);
  return out;
}

// route(logits, rows, experts, topK, normalize) → { experts: Int32Array, weights: Float32Array }
Napi::Value Route(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto logits = info[0].As<Napi::Float32Array>();
  int rows = info[1].As<Napi::Number>().Int32Value(), experts = info[2].As<Napi::Number>().Int32Value();
  int topK = info[3].As<Napi::Number>().Int32Value(), normalize = info[4].As<Napi::Number>().Int32Value();
  auto e = Napi::Int32Array::New(env, static_cast<size_t>(rows) * topK);
  auto w = f32Array(env, static_cast<size_t>(rows) * topK);
  for (int r = 0; r < rows; r++) tpk::route_row(logits.Data() + static_cast<size_t>(r) * experts, experts, topK, normalize, e.Data() + r * topK, w.Data() + r * topK);
  Napi::Object o = Napi::Object::New(env);
  o.Set("experts", e);
  o.Set("weights", w);
  return o;
}

// topk(x, cols, k) → { values, indices }: the kernel's passes (each takes the best ranked after the previous pick)
Napi::Value Topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto x = info[0].As<Napi::Float32Array>();
  int cols = info[1].As<Napi::Number>().Int32Value(), k = info[2].As<Napi::Number>().Int32Value();
  size_t rows = x.ElementLength() / cols;
  auto values = f32Array(env, rows * k);
  auto indices = Napi::Int32Array::New(env, rows * k);
  for (size_t r = 0; r < rows; r++) {
    const float* row = x.Data() + r * cols;
    float prevV = 0.0f;
    int prevI = -1;
    for (int p = 0; p < k; p++) {
      float v = 0.0f;
      int best = -1;
      for (int c = 0; c < cols; c++) {
        if (prevI >= 0 && !tpk::ranks_before(prevV, prevI, row[c], c)) continue;
        if (best < 0 || tpk::ranks_before(row[c], c, v, best)) {
          v = row[c];
          best = c;
        }
      }
      values[r * k + p] = v;
      indices[r * k + p] = best;
      prevV = v;
      prevI = best;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("values", values);
  o.Set("indices", indices);
  return o;
}

Napi::Object MathExports(Napi::Env env) {
  Napi::Object m = Napi::Object::New(env);
  m.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32));
  m.Set("f16ToF32", Napi::Function::New(env, F16ToF32));
  m.Set("f32ToBf16", Napi::Function::New(env, F32ToBf16));
  m.Set("f32ToF16", Napi::Function::New(env, F32ToF16));
  m.Set("activation", Napi::Function::New(env, Activation));
  m.Set("softcap", Napi::Function::New(env, Softcap));
  m.Set("rotary", Napi::Function::New(env, Rotary));
  m.Set("sinusoidal", Napi::Function::New(env, Sinusoidal));
  m.Set("norm", Napi::Function::New(env, Norm));
  m.Set("attention", Napi::Function::New(env, Attention));
  m.Set("expectationWeight", Napi::Function::New(env, ExpectationWeight));
  m.Set("route", Napi::Function::New(env, Route));
  m.Set("topk", Napi::Function::New(env, Topk));
  return m;
}

}  // namespace

class CudaAddon : public Napi::Addon<CudaAddon> {
 public:
  CudaAddon(Napi::Env env, Napi::Object exports) {
    exports.Set("load", Napi::Function::New(env, Load));
    exports.Set("state", Napi::Function::New(env, State));
    exports.Set("dlopenCheck", Napi::Function::New(env, DlopenCheck));
    exports.Set("errorName", Napi::Function::New(env, ErrorName));
    exports.Set("devices", Napi::Function::New(env, Devices));
    exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
    exports.Set("Context", Context::Init(env));
    exports.Set("NcclComm", NcclComm::Init(env));
    exports.Set("math", MathExports(env));
    exports.Set("abi", Napi::Number::New(env, 1));
  }
};

}  // namespace tp

using TpCudaAddon = tp::CudaAddon;
NODE_API_ADDON(TpCudaAddon)

#include "context.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "libs.h"

namespace tp {

namespace {

/** Device pointers and handles cross into JS as numbers: exact below 2^53, which every address here is. */
double handleToNumber(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }
template <typename T>
T numberToHandle(const Napi::Value& v) {
  return reinterpret_cast<T>(static_cast<uintptr_t>(v.As<Napi::Number>().DoubleValue()));
}
CUdeviceptr numberToPtr(const Napi::Value& v) { return static_cast<CUdeviceptr>(v.As<Napi::Number>().DoubleValue()); }
size_t numberToSize(const Napi::Value& v) { return static_cast<size_t>(v.As<Napi::Number>().DoubleValue()); }
int toInt(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }

thread_local CUcontext t_current = nullptr;

constexpr size_t ALIGN = 256;
size_t aligned(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

}  // namespace

void throwStatus(Napi::Env env, const char* library, const std::string& call, int status, const std::string& detail) {
  std::string name, text;
  if (std::strcmp(library, "cuda") == 0) {
    const Driver* d = driver();
    const char* n = nullptr;
    const char* t = nullptr;
    if (d && d->cuGetErrorName(status, &n) == CUDA_SUCCESS && n) name = n;
    if (d && d->cuGetErrorString(status, &t) == CUDA_SUCCESS && t) text = t;
  } else if (std::strcmp(library, "cublasLt") == 0) {
    const CublasLt* c = cublasLt();
    if (c && c->cublasLtGetStatusName) name = c->cublasLtGetStatusName(status);
    if (c && c->cublasLtGetStatusString) text = c->cublasLtGetStatusString(status);
  } else if (std::strcmp(library, "nccl") == 0) {
    const Nccl* n = nccl();
    if (n) text = n->ncclGetErrorString(status);
  }
  std::string message = call + " failed with status " + std::to_string(status);
  if (!name.empty()) message += " (" + name + ")";
  if (!text.empty()) message += ": " + text;
  if (!detail.empty()) message += "; " + detail;
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("library", Napi::String::New(env, library));
  e.Set("call", Napi::String::New(env, call));
  e.Set("status", Napi::Number::New(env, status));
  if (!name.empty()) e.Set("statusName", Napi::String::New(env, name));
  if (!text.empty()) e.Set("statusText", Napi::String::New(env, text));
  if (!detail.empty()) e.Set("detail", Napi::String::New(env, detail));
  throw e;
}

#define CU(env, call, expr)                                   \
  do {                                                        \
    CUresult r_ = (expr);                                     \
    if (r_ != CUDA_SUCCESS) throwStatus(env, "cuda", call, r_); \
  } while (0)

#define LT(env, call, expr)                                           \
  do {                                                                \
    cublasStatus_t r_ = (expr);                                       \
    if (r_ != 0) throwStatus(env, "cublasLt", call, r_);              \
  } while (0)

static const Driver& needDriver(Napi::Env env) {
  const Driver* d = driver();
  if (!d) {
    Napi::Error e = Napi::Error::New(env, "the CUDA driver (libcuda.so.1) is not loaded");
    e.Set("library", Napi::String::New(env, "cuda"));
    e.Set("call", Napi::String::New(env, "dlopen"));
    throw e;
  }
  return *d;
}

// ───────────────────────────── notifications ─────────────────────────────

/** A promise that settles when the stream reaches a point: a plain notification, or a download. */
struct Job {
  Context* context;
  napi_deferred deferred;
  char* data;  // malloc'ed download target (nullptr for a plain notification)
  size_t bytes;
};

/** A host function on the stream: copy a staged chunk out, then (for the last chunk) post the job. */
struct HostStep {
  napi_threadsafe_function tsfn;
  char* dst;
  const char* src;
  size_t n;
  Job* job;
};

static void CUDA_HOST_FN(void* p) {
  HostStep* step = static_cast<HostStep*>(p);
  if (step->n) std::memcpy(step->dst, step->src, step->n);
  if (step->job) napi_call_threadsafe_function(step->tsfn, step->job, napi_tsfn_nonblocking);
  delete step;
}

static void finalizeDownload(napi_env, void* data, void*) { std::free(data); }

static void callJs(napi_env env, napi_value, void* context, void* data) {
  Job* job = static_cast<Job*>(data);
  if (env == nullptr || job == nullptr) {  // the environment is going away
    if (job) std::free(job->data);
    delete job;
    return;
  }
  static_cast<Context*>(context)->finishJob(Napi::Env(env), job);
}

void Context::finishJob(Napi::Env env, Job* job) {
  if (--pending_ == 0 && tsfn_) napi_unref_threadsafe_function(env, tsfn_);
  napi_value value;
  if (job->data) {
    napi_create_external_arraybuffer(env, job->data, job->bytes, finalizeDownload, nullptr, &value);
  } else {
    napi_get_undefined(env, &value);
  }
  napi_resolve_deferred(env, job->deferred, value);
  delete job;
}

void Context::enqueueJob(Napi::Env env, Job* job, char* dst, const char* src, size_t n) {
  const Driver& d = needDriver(env);
  HostStep* step = new HostStep{tsfn_, dst, src, n, job};
  CUresult r = d.cuLaunchHostFunc(stream_, CUDA_HOST_FN, step);
  if (r != CUDA_SUCCESS) {
    delete step;
    throwStatus(env, "cuda", "cuLaunchHostFunc", r);
  }
}

// ───────────────────────────── construction ─────────────────────────────

Napi::Function Context::Init(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod("alloc", &Context::Alloc),
                         InstanceMethod("free", &Context::Free),
                         InstanceMethod("upload", &Context::Upload),
                         InstanceMethod("download", &Context::Download),
                         InstanceMethod("copy", &Context::Copy),
                         InstanceMethod("fill32", &Context::Fill32),
                         InstanceMethod("loadModule", &Context::LoadModule),
                         InstanceMethod("getFunction", &Context::GetFunction),
                         InstanceMethod("setMaxDynamicShared", &Context::SetMaxDynamicShared),
                         InstanceMethod("launch", &Context::Launch),
                         InstanceMethod("gemm", &Context::Gemm),
                         InstanceMethod("eventCreate", &Context::EventCreate),
                         InstanceMethod("eventRecord", &Context::EventRecord),
                         InstanceMethod("waitEvent", &Context::WaitEvent),
                         InstanceMethod("eventDestroy", &Context::EventDestroy),
                         InstanceMethod("notify", &Context::Notify),
                         InstanceMethod("query", &Context::Query),
                         InstanceMethod("synchronize", &Context::Synchronize),
                         InstanceMethod("enablePeer", &Context::EnablePeer),
                         InstanceMethod("memInfo", &Context::MemInfo),
                         InstanceMethod("dispose", &Context::Dispose),
                     });
}

static void initStaging(Napi::Env env, const Driver& d, Staging& s, size_t bytes, int slots) {
  s.slots = slots;
  s.slotBytes = aligned(bytes / slots);
  void* p = nullptr;
  CU(env, "cuMemHostAlloc", d.cuMemHostAlloc(&p, s.slotBytes * slots, CU_MEMHOSTALLOC_PORTABLE));
  s.base = static_cast<char*>(p);
  s.events.assign(slots, nullptr);
  s.used.assign(slots, false);
  for (auto& e : s.events) CU(env, "cuEventCreate", d.cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
}

// new Context(device, { uploadStagingBytes, downloadStagingBytes, workspaceBytes })
Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
  Napi::Env env = info.Env();
  const Driver& d = needDriver(env);
  device_ = toInt(info[0]);
  Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  auto option = [&](const char* key, double fallback) { return options.Has(key) ? options.Get(key).As<Napi::Number>().DoubleValue() : fallback; };
  CU(env, "cuDeviceGet", d.cuDeviceGet(&dev_, device_));
  CU(env, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&ctx_, dev_));
  disposed_ = false;
  try {
    CU(env, "cuCtxSetCurrent", d.cuCtxSetCurrent(ctx_));
    t_current = ctx_;
    CU(env, "cuStreamCreate", d.cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING));
    // Keep freed memory in the pool: step tensors are allocated and freed every step.
    CUmemoryPool pool = nullptr;
    CU(env, "cuDeviceGetDefaultMemPool", d.cuDeviceGetDefaultMemPool(&pool, dev_));
    unsigned long long threshold = ~0ull;
    CU(env, "cuMemPoolSetAttribute", d.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold));
    initStaging(env, d, up_, static_cast<size_t>(option("uploadStagingBytes", 64.0 * (1 << 20))), 8);
    initStaging(env, d, down_, static_cast<size_t>(option("downloadStagingBytes", 16.0 * (1 << 20))), 8);
    if (const CublasLt* c = cublasLt()) {
      LT(env, "cublasLtCreate", c->cublasLtCreate(&lt_));
      workspaceBytes_ = static_cast<size_t>(option("workspaceBytes", 32.0 * (1 << 20)));
      CU(env, "cuMemAlloc", d.cuMemAlloc(&workspace_, workspaceBytes_));
    }
    napi_value name;
    napi_create_string_utf8(env, "tp-cuda-notify", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, callJs, &tsfn_) != napi_ok) {
      throw Napi::Error::New(env, "napi_create_threadsafe_function failed");
    }
    napi_unref_threadsafe_function(env, tsfn_);
  } catch (...) {
    release(false, env);
    throw;
  }
}

Context::~Context() {
  if (!disposed_) release(false, Napi::Env(nullptr));
}

void Context::makeCurrent(Napi::Env env) {
  if (t_current == ctx_) return;
  CU(env, "cuCtxSetCurrent", needDriver(env).cuCtxSetCurrent(ctx_));
  t_current = ctx_;
}

void Context::check(Napi::Env env) {
  if (disposed_) throw Napi::Error::New(env, "this CUDA context was disposed");
  makeCurrent(env);
}

/** Free everything, in reverse; `throwing` reports the first failure (dispose), else best effort (finalizer). */
void Context::release(bool throwing, Napi::Env env) {
  const Driver* d = driver();
  if (!d || disposed_) return;
  disposed_ = true;
  CUresult first = CUDA_SUCCESS;
  const char* firstCall = "";
  auto note = [&](const char* call, CUresult r) {
    if (r != CUDA_SUCCESS && first == CUDA_SUCCESS) {
      first = r;
      firstCall = call;
    }
  };
  note("cuCtxSetCurrent", d->cuCtxSetCurrent(ctx_));
  t_current = ctx_;
  if (stream_) note("cuStreamSynchronize", d->cuStreamSynchronize(stream_));
  if (lt_ && cublasLt()) cublasLt()->cublasLtDestroy(lt_);
  lt_ = nullptr;
  if (workspace_) note("cuMemFree", d->cuMemFree(workspace_));
  workspace_ = 0;
  for (Staging* s : {&up_, &down_}) {
    for (CUevent e : s->events)
      if (e) d->cuEventDestroy(e);
    s->events.clear();
    if (s->base) note("cuMemFreeHost", d->cuMemFreeHost(s->base));
    s->base = nullptr;
  }
  for (CUmodule m : modules_) d->cuModuleUnload(m);
  modules_.clear();
  if (stream_) note("cuStreamDestroy", d->cuStreamDestroy(stream_));
  stream_ = nullptr;
  for (CUdevice p : peerDevices_) d->cuDevicePrimaryCtxRelease(p);
  peerDevices_.clear();
  peers_.clear();
  if (ctx_) note("cuDevicePrimaryCtxRelease", d->cuDevicePrimaryCtxRelease(dev_));
  ctx_ = nullptr;
  t_current = nullptr;
  if (tsfn_) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  tsfn_ = nullptr;
  if (throwing && first != CUDA_SUCCESS) throwStatus(env, "cuda", firstCall, first);
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  release(true, info.Env());
  return info.Env().Undefined();
}

// ───────────────────────────── memory ─────────────────────────────

// alloc(bytes) → device pointer (stream-ordered)
Napi::Value Context::Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  size_t bytes = numberToSize(info[0]);
  CUdeviceptr p = 0;
  CU(env, "cuMemAllocAsync", driver()->cuMemAllocAsync(&p, bytes == 0 ? ALIGN : bytes, stream_));
  return Napi::Number::New(env, static_cast<double>(p));
}

// free(ptr): stream-ordered, so work already queued that reads it is unaffected
Napi::Value Context::Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuMemFreeAsync", driver()->cuMemFreeAsync(numberToPtr(info[0]), stream_));
  return env.Undefined();
}

char* Context::reserve(Napi::Env env, Staging& s, size_t bytes) {
  const Driver& d = *driver();
  if (s.offset + bytes > s.slotBytes) {
    CU(env, "cuEventRecord", d.cuEventRecord(s.events[s.slot], stream_));
    s.used[s.slot] = true;
    s.slot = (s.slot + 1) % s.slots;
    s.offset = 0;
    // The slot's previous contents must have left (uploads) or been copied out (downloads).
    if (s.used[s.slot]) CU(env, "cuEventSynchronize", d.cuEventSynchronize(s.events[s.slot]));
  }
  char* p = s.base + static_cast<size_t>(s.slot) * s.slotBytes + s.offset;
  s.offset += aligned(bytes);
  return p;
}

// upload(ptr, bytes: Uint8Array, byteOffset = 0): copied into pinned staging now, to the device in stream order
Napi::Value Context::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CUdeviceptr dst = numberToPtr(info[0]);
  Napi::Uint8Array src = info[1].As<Napi::Uint8Array>();
  size_t at = info.Length() > 2 ? numberToSize(info[2]) : 0;
  const uint8_t* data = src.Data();
  size_t total = src.ByteLength();
  for (size_t done = 0; done < total;) {
    size_t n = std::min(total - done, up_.slotBytes);
    char* stage = reserve(env, up_, n);
    std::memcpy(stage, data + done, n);
    CU(env, "cuMemcpyHtoDAsync", driver()->cuMemcpyHtoDAsync(dst + at + done, stage, n, stream_));
    done += n;
  }
  return env.Undefined();
}

// download(ptr, bytes) → Promise<ArrayBuffer>, settled on this thread once the stream has copied it
Napi::Value Context::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CUdeviceptr src = numberToPtr(info[0]);
  size_t total = numberToSize(info[1]);
  char* out = static_cast<char*>(std::malloc(total == 0 ? 1 : total));
  if (!out) throw Napi::Error::New(env, "out of host memory for a download of " + std::to_string(total) + " bytes");
  napi_deferred deferred;
  napi_value promise;
  napi_create_promise(env, &deferred, &promise);
  Job* job = new Job{this, deferred, out, total};
  try {
    size_t done = 0;
    do {
      size_t n = std::min(total - done, down_.slotBytes);
      char* stage = reserve(env, down_, n);
      if (n) CU(env, "cuMemcpyDtoHAsync", driver()->cuMemcpyDtoHAsync(stage, src + done, n, stream_));
      bool last = done + n >= total;
      if (last && pending_++ == 0) napi_ref_threadsafe_function(env, tsfn_);
      try {
        enqueueJob(env, last ? job : nullptr, out + done, stage, n);
      } catch (...) {
        if (last && --pending_ == 0) napi_unref_threadsafe_function(env, tsfn_);
        throw;
      }
      done += n;
    } while (done < total);
  } catch (...) {
    // The promise is abandoned: reject it so nothing waits on it, and rethrow for the caller.
    napi_value error;
    napi_create_string_utf8(env, "download failed", NAPI_AUTO_LENGTH, &error);
    napi_reject_deferred(env, deferred, error);
    delete job;
    throw;
  }
  return Napi::Value(env, promise);
}

// copy(dst, src, bytes): device to device, in stream order
Napi::Value Context::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  size_t bytes = numberToSize(info[2]);
  if (bytes) CU(env, "cuMemcpyDtoDAsync", driver()->cuMemcpyDtoDAsync(numberToPtr(info[0]), numberToPtr(info[1]), bytes, stream_));
  return env.Undefined();
}

// fill32(ptr, bits, count): `count` 32-bit words of the pattern `bits`
Napi::Value Context::Fill32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  size_t count = numberToSize(info[2]);
  unsigned bits = info[1].As<Napi::Number>().Uint32Value();
  if (count) CU(env, "cuMemsetD32Async", driver()->cuMemsetD32Async(numberToPtr(info[0]), bits, count, stream_));
  return env.Undefined();
}

// ───────────────────────────── kernels ─────────────────────────────

// loadModule(fatbin: Uint8Array) → module handle
Napi::Value Context::LoadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  Napi::Uint8Array image = info[0].As<Napi::Uint8Array>();
  // cuModuleLoadData reads the image in place; give it an 8-byte-aligned private copy.
  std::vector<uint64_t> copy((image.ByteLength() + 7) / 8);
  std::memcpy(copy.data(), image.Data(), image.ByteLength());
  CUmodule m = nullptr;
  CU(env, "cuModuleLoadData", driver()->cuModuleLoadData(&m, copy.data()));
  modules_.push_back(m);
  return Napi::Number::New(env, handleToNumber(m));
}

// getFunction(module, name) → function handle
Napi::Value Context::GetFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  std::string name = info[1].As<Napi::String>().Utf8Value();
  CUfunction f = nullptr;
  CUresult r = driver()->cuModuleGetFunction(&f, numberToHandle<CUmodule>(info[0]), name.c_str());
  if (r != CUDA_SUCCESS) throwStatus(env, "cuda", "cuModuleGetFunction", r, "kernel " + name);
  return Napi::Number::New(env, handleToNumber(f));
}

Napi::Value Context::SetMaxDynamicShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuFuncSetAttribute", driver()->cuFuncSetAttribute(numberToHandle<CUfunction>(info[0]), CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, toInt(info[1])));
  return env.Undefined();
}

// launch(fn, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, args: Uint8Array) — args packed as the kernel's parameters
Napi::Value Context::Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CUfunction f = numberToHandle<CUfunction>(info[0]);
  Napi::Uint8Array args = info[8].As<Napi::Uint8Array>();
  size_t size = args.ByteLength();
  void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, args.Data(), CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
  CUresult r = driver()->cuLaunchKernel(f, info[1].As<Napi::Number>().Uint32Value(), info[2].As<Napi::Number>().Uint32Value(), info[3].As<Napi::Number>().Uint32Value(),
                                        info[4].As<Napi::Number>().Uint32Value(), info[5].As<Napi::Number>().Uint32Value(), info[6].As<Napi::Number>().Uint32Value(),
                                        info[7].As<Napi::Number>().Uint32Value(), stream_, nullptr, extra);
  if (r != CUDA_SUCCESS) throwStatus(env, "cuda", "cuLaunchKernel", r);
  return env.Undefined();
}

// gemm(transA, transB, m, n, k, A, aType, lda, B, bType, ldb, D, dType, ldd, alpha, beta):
// column-major D = alpha · op(A) · op(B) + beta · D, f32 compute, through cuBLASLt.
Napi::Value Context::Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  const CublasLt* c = cublasLt();
  if (!c || !lt_) throw Napi::Error::New(env, "cuBLASLt is not loaded");
  int transA = toInt(info[0]), transB = toInt(info[1]);
  uint64_t m = numberToSize(info[2]), n = numberToSize(info[3]), k = numberToSize(info[4]);
  CUdeviceptr A = numberToPtr(info[5]), B = numberToPtr(info[8]), D = numberToPtr(info[11]);
  int aType = toInt(info[6]), bType = toInt(info[9]), dType = toInt(info[12]);
  int64_t lda = toInt(info[7]), ldb = toInt(info[10]), ldd = toInt(info[13]);
  float alpha = static_cast<float>(info[14].As<Napi::Number>().DoubleValue());
  float beta = static_cast<float>(info[15].As<Napi::Number>().DoubleValue());
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  auto cleanup = [&]() {
    if (pref) c->cublasLtMatmulPreferenceDestroy(pref);
    if (ld) c->cublasLtMatrixLayoutDestroy(ld);
    if (lb) c->cublasLtMatrixLayoutDestroy(lb);
    if (la) c->cublasLtMatrixLayoutDestroy(la);
    if (desc) c->cublasLtMatmulDescDestroy(desc);
  };
  try {
    LT(env, "cublasLtMatmulDescCreate", c->cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(env, "cublasLtMatmulDescSetAttribute", c->cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transA, sizeof(transA)));
    LT(env, "cublasLtMatmulDescSetAttribute", c->cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &transB, sizeof(transB)));
    // Layouts describe the stored matrices, before op(): A is k × m when transposed, else m × k.
    LT(env, "cublasLtMatrixLayoutCreate", c->cublasLtMatrixLayoutCreate(&la, aType, transA ? k : m, transA ? m : k, lda));
    LT(env, "cublasLtMatrixLayoutCreate", c->cublasLtMatrixLayoutCreate(&lb, bType, transB ? n : k, transB ? k : n, ldb));
    LT(env, "cublasLtMatrixLayoutCreate", c->cublasLtMatrixLayoutCreate(&ld, dType, m, n, ldd));
    std::string key = std::to_string(transA) + "," + std::to_string(transB) + "," + std::to_string(m) + "," + std::to_string(n) + "," + std::to_string(k) + "," +
                      std::to_string(aType) + "," + std::to_string(bType) + "," + std::to_string(dType) + "," + std::to_string(lda) + "," +
                      std::to_string(ldb) + "," + std::to_string(ldd) + "," + (beta != 0.0f ? "b" : "");
    auto found = algos_.find(key);
    if (found == algos_.end()) {
      LT(env, "cublasLtMatmulPreferenceCreate", c->cublasLtMatmulPreferenceCreate(&pref));
      uint64_t ws = workspaceBytes_;
      LT(env, "cublasLtMatmulPreferenceSetAttribute", c->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
      cublasLtMatmulHeuristicResult_t result;
      std::memset(&result, 0, sizeof(result));
      int count = 0;
      LT(env, "cublasLtMatmulAlgoGetHeuristic", c->cublasLtMatmulAlgoGetHeuristic(lt_, desc, la, lb, ld, ld, pref, 1, &result, &count));
      if (count < 1) throwStatus(env, "cublasLt", "cublasLtMatmulAlgoGetHeuristic", 15, "no algorithm for this GEMM");
      found = algos_.emplace(key, result.algo).first;
    }
    LT(env, "cublasLtMatmul",
       c->cublasLtMatmul(lt_, desc, &alpha, reinterpret_cast<const void*>(A), la, reinterpret_cast<const void*>(B), lb, &beta,
                         reinterpret_cast<const void*>(D), ld, reinterpret_cast<void*>(D), ld, &found->second, reinterpret_cast<void*>(workspace_),
                         workspaceBytes_, stream_));
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  return env.Undefined();
}

// ───────────────────────────── events and completion ─────────────────────────────

Napi::Value Context::EventCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CUevent e = nullptr;
  CU(env, "cuEventCreate", driver()->cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
  return Napi::Number::New(env, handleToNumber(e));
}

Napi::Value Context::EventRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuEventRecord", driver()->cuEventRecord(numberToHandle<CUevent>(info[0]), stream_));
  return env.Undefined();
}

// waitEvent(event): this stream waits for an event (of any rank in the process, any device)
Napi::Value Context::WaitEvent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuStreamWaitEvent", driver()->cuStreamWaitEvent(stream_, numberToHandle<CUevent>(info[0]), 0));
  return env.Undefined();
}

Napi::Value Context::EventDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuEventDestroy", driver()->cuEventDestroy(numberToHandle<CUevent>(info[0])));
  return env.Undefined();
}

// notify() → Promise<void> that resolves when the stream reaches this point
Napi::Value Context::Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  napi_deferred deferred;
  napi_value promise;
  napi_create_promise(env, &deferred, &promise);
  Job* job = new Job{this, deferred, nullptr, 0};
  if (pending_++ == 0) napi_ref_threadsafe_function(env, tsfn_);
  try {
    enqueueJob(env, job, nullptr, nullptr, 0);
  } catch (...) {
    if (--pending_ == 0) napi_unref_threadsafe_function(env, tsfn_);
    napi_value error;
    napi_create_string_utf8(env, "notify failed", NAPI_AUTO_LENGTH, &error);
    napi_reject_deferred(env, deferred, error);
    delete job;
    throw;
  }
  return Napi::Value(env, promise);
}

// query() → cuStreamQuery's status, never thrown: 0 idle, 600 busy, anything else an error of the context
Napi::Value Context::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  return Napi::Number::New(env, driver()->cuStreamQuery(stream_));
}

// synchronize(): blocks this thread (used on dispose and by tests only)
Napi::Value Context::Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  CU(env, "cuStreamSynchronize", driver()->cuStreamSynchronize(stream_));
  return env.Undefined();
}

// enablePeer(device): kernels of this context may read memory of `device` (in-process collectives)
Napi::Value Context::EnablePeer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  const Driver& d = *driver();
  int other = toInt(info[0]);
  if (other == device_) return env.Undefined();
  CUdevice peer = 0;
  CU(env, "cuDeviceGet", d.cuDeviceGet(&peer, other));
  int can = 0;
  CU(env, "cuDeviceCanAccessPeer", d.cuDeviceCanAccessPeer(&can, dev_, peer));
  if (!can) throwStatus(env, "cuda", "cuDeviceCanAccessPeer", 217, "GPU " + std::to_string(device_) + " cannot access GPU " + std::to_string(other) + " directly");
  CUcontext peerCtx = nullptr;
  CU(env, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&peerCtx, peer));
  peers_.push_back(peerCtx);
  peerDevices_.push_back(peer);
  CUresult r = d.cuCtxEnablePeerAccess(peerCtx, 0);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) throwStatus(env, "cuda", "cuCtxEnablePeerAccess", r);
  return env.Undefined();
}

Napi::Value Context::MemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check(env);
  size_t free = 0, total = 0;
  CU(env, "cuMemGetInfo", driver()->cuMemGetInfo(&free, &total));
  Napi::Object o = Napi::Object::New(env);
  o.Set("free", Napi::Number::New(env, static_cast<double>(free)));
  o.Set("total", Napi::Number::New(env, static_cast<double>(total)));
  return o;
}

// ───────────────────────────── NCCL ─────────────────────────────

Napi::Function NcclComm::Init(Napi::Env env) {
  return DefineClass(env, "NcclComm",
                     {
                         InstanceMethod("status", &NcclComm::Status),
                         InstanceMethod("allReduce", &NcclComm::AllReduce),
                         InstanceMethod("allGather", &NcclComm::AllGather),
                         InstanceMethod("broadcast", &NcclComm::Broadcast),
                         InstanceMethod("lastError", &NcclComm::LastError),
                         InstanceMethod("abort", &NcclComm::Abort),
                         InstanceMethod("destroy", &NcclComm::Destroy),
                     });
}

static const Nccl& needNccl(Napi::Env env) {
  const Nccl* n = nccl();
  if (!n) {
    Napi::Error e = Napi::Error::New(env, "NCCL (libnccl.so.2) is not loaded");
    e.Set("library", Napi::String::New(env, "nccl"));
    e.Set("call", Napi::String::New(env, "dlopen"));
    throw e;
  }
  return *n;
}

int NcclComm::checked(Napi::Env env, const char* call, int result) {
  if (result == ncclSuccess || result == ncclInProgress) return result;
  const Nccl& n = needNccl(env);
  std::string detail = (comm_ && n.ncclGetLastError) ? n.ncclGetLastError(comm_) : "";
  throwStatus(env, "nccl", call, result, detail);
}

// new NcclComm(context, uniqueId: Uint8Array(128), nranks, rank): ncclCommInitRankConfig, non-blocking
NcclComm::NcclComm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NcclComm>(info) {
  Napi::Env env = info.Env();
  const Nccl& n = needNccl(env);
  context_ = Napi::ObjectWrap<Context>::Unwrap(info[0].As<Napi::Object>());
  contextRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  device_ = context_->device();
  Napi::Uint8Array idBytes = info[1].As<Napi::Uint8Array>();
  if (idBytes.ByteLength() != NCCL_UNIQUE_ID_BYTES) throw Napi::Error::New(env, "an NCCL unique id has 128 bytes");
  ncclUniqueId id;
  std::memcpy(id.internal, idBytes.Data(), NCCL_UNIQUE_ID_BYTES);
  int nranks = toInt(info[2]), rank = toInt(info[3]);
  context_->makeCurrent(env);
  ncclConfig218 config;
  std::memset(&config, 0, sizeof(config));
  config.size = sizeof(config);
  config.magic = NCCL_API_MAGIC;
  config.version = NCCL_CONFIG_VERSION_218;
  config.blocking = 0;
  config.cgaClusterSize = NCCL_CONFIG_UNDEF_INT;
  config.minCTAs = NCCL_CONFIG_UNDEF_INT;
  config.maxCTAs = NCCL_CONFIG_UNDEF_INT;
  config.netName = nullptr;
  config.splitShare = NCCL_CONFIG_UNDEF_INT;
  std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
  checked(env, "ncclCommInitRankConfig", n.ncclCommInitRankConfig(&comm_, nranks, id, rank, &config));
}

NcclComm::~NcclComm() {
  // Never destroy a communicator from a finalizer: peers may still use it (and destruction order is
  // unpredictable). dispose() calls destroy() or abort() explicitly.
}

// status() → ncclCommGetAsyncError's state: 0 ready, 7 in progress; an error throws
Napi::Value NcclComm::Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = needNccl(env);
  if (!comm_) throw Napi::Error::New(env, "this NCCL communicator was destroyed");
  ncclResult_t state = ncclSuccess;
  {
    std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
    checked(env, "ncclCommGetAsyncError", n.ncclCommGetAsyncError(comm_, &state));
  }
  return Napi::Number::New(env, checked(env, "ncclCommGetAsyncError (state)", state));
}

// allReduce(ptr, count): in-place f32 sum on the context's stream → 0, or 7 while still being enqueued
Napi::Value NcclComm::AllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = needNccl(env);
  context_->makeCurrent(env);
  void* p = reinterpret_cast<void*>(numberToPtr(info[0]));
  std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
  return Napi::Number::New(env, checked(env, "ncclAllReduce", n.ncclAllReduce(p, p, numberToSize(info[1]), ncclFloat32, ncclSum, comm_, context_->stream())));
}

// allGather(send, recv, count): equal f32 counts per rank, rank-major in recv
Napi::Value NcclComm::AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = needNccl(env);
  context_->makeCurrent(env);
  std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
  return Napi::Number::New(env, checked(env, "ncclAllGather",
                                        n.ncclAllGather(reinterpret_cast<void*>(numberToPtr(info[0])), reinterpret_cast<void*>(numberToPtr(info[1])),
                                                        numberToSize(info[2]), ncclFloat32, comm_, context_->stream())));
}

// broadcast(ptr, count, root): in place
Napi::Value NcclComm::Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl& n = needNccl(env);
  context_->makeCurrent(env);
  void* p = reinterpret_cast<void*>(numberToPtr(info[0]));
  std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
  return Napi::Number::New(env, checked(env, "ncclBroadcast", n.ncclBroadcast(p, p, numberToSize(info[1]), ncclFloat32, toInt(info[2]), comm_, context_->stream())));
}

Napi::Value NcclComm::LastError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl* n = nccl();
  if (!n || !comm_ || !n->ncclGetLastError) return Napi::String::New(env, "");
  return Napi::String::New(env, n->ncclGetLastError(comm_));
}

// abort(): frees the communicator and stops its work on the device (a failed or late peer)
Napi::Value NcclComm::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl* n = nccl();
  if (n && comm_) {
    context_->makeCurrent(env);
    std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
    n->ncclCommAbort(comm_);
  }
  comm_ = nullptr;
  contextRef_.Reset();
  return env.Undefined();
}

Napi::Value NcclComm::Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Nccl* n = nccl();
  if (n && comm_) {
    context_->makeCurrent(env);
    std::lock_guard<std::mutex> lock(ncclDeviceMutex(device_));
    ncclComm_t c = comm_;
    comm_ = nullptr;
    contextRef_.Reset();
    checked(env, "ncclCommDestroy", n->ncclCommDestroy(c));
  }
  return env.Undefined();
}

}  // namespace tp

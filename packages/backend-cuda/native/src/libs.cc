#include "libs.h"

#include "glibc.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace tp {

namespace {

struct Slot {
  LibraryState state;
  void* handle = nullptr;
};

// Function-local statics: initialised on first use, never destroyed before the process ends.
std::mutex& loadMutex() {
  static std::mutex* m = new std::mutex();
  return *m;
}

// Built with placement new (no array new: keeps the addon off GLIBCXX_3.4.29's bad_array_new_length).
template <typename T, int N>
T* leakedArray() {
  T* p = static_cast<T*>(::operator new(sizeof(T) * N));
  for (int i = 0; i < N; i++) new (p + i) T();
  return p;
}

Slot& slot(Lib lib) {
  static Slot* slots = leakedArray<Slot, LIB_COUNT>();
  return slots[static_cast<int>(lib)];
}

Driver g_driver;
CublasLt g_cublaslt;
Nccl g_nccl;
// Published (release) after a table is complete; read (acquire) by driver()/cublasLt()/nccl().
std::atomic<bool> g_ready[LIB_COUNT];

std::string lastDlError() {
  const char* e = dlerror();
  return e ? std::string(e) : std::string("unknown dlopen error");
}


std::string baseName(const std::string& s) {
  auto at = s.rfind('/');
  return at == std::string::npos ? s : s.substr(at + 1);
}

template <typename F>
void bind(void* handle, F& fn, const char* name, std::vector<std::string>& missing, bool required = true) {
  void* p = dlsym(handle, name);
  fn = reinterpret_cast<F>(p);
  if (!p && required) missing.emplace_back(name);
}

// ── the driver: cuGetProcAddress_v2 with the base name (the ABI of CUDA 12.0), else dlsym of the versioned name ──
using GetProcAddress = CUresult (*)(const char*, void**, int, unsigned long long, int*);

template <typename F>
void bindDriver(void* handle, GetProcAddress gpa, F& fn, const char* base, const char* versioned, std::vector<std::string>& missing) {
  void* p = nullptr;
  if (gpa) {
    int status = 0;
    if (gpa(base, &p, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &status) != CUDA_SUCCESS || status != 0) p = nullptr;
  }
  if (!p) p = dlsym(handle, versioned);
  fn = reinterpret_cast<F>(p);
  if (!p) missing.emplace_back(versioned);
}

void resolveDriver(void* h, LibraryState& st) {
  auto gpa = reinterpret_cast<GetProcAddress>(dlsym(h, "cuGetProcAddress_v2"));
  Driver& d = g_driver;
  auto& m = st.missing;
#define TP_DRV(field, versioned) bindDriver(h, gpa, d.field, #field, versioned, m)
  TP_DRV(cuInit, "cuInit");
  TP_DRV(cuDriverGetVersion, "cuDriverGetVersion");
  TP_DRV(cuGetErrorName, "cuGetErrorName");
  TP_DRV(cuGetErrorString, "cuGetErrorString");
  TP_DRV(cuDeviceGetCount, "cuDeviceGetCount");
  TP_DRV(cuDeviceGet, "cuDeviceGet");
  TP_DRV(cuDeviceGetName, "cuDeviceGetName");
  TP_DRV(cuDeviceGetAttribute, "cuDeviceGetAttribute");
  TP_DRV(cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  TP_DRV(cuDeviceCanAccessPeer, "cuDeviceCanAccessPeer");
  TP_DRV(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  TP_DRV(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  TP_DRV(cuCtxSetCurrent, "cuCtxSetCurrent");
  TP_DRV(cuCtxGetCurrent, "cuCtxGetCurrent");
  TP_DRV(cuCtxEnablePeerAccess, "cuCtxEnablePeerAccess");
  TP_DRV(cuMemGetInfo, "cuMemGetInfo_v2");
  TP_DRV(cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool");
  TP_DRV(cuMemPoolSetAttribute, "cuMemPoolSetAttribute");
  TP_DRV(cuMemAllocAsync, "cuMemAllocAsync");
  TP_DRV(cuMemFreeAsync, "cuMemFreeAsync");
  TP_DRV(cuMemAlloc, "cuMemAlloc_v2");
  TP_DRV(cuMemFree, "cuMemFree_v2");
  TP_DRV(cuMemHostAlloc, "cuMemHostAlloc");
  TP_DRV(cuMemFreeHost, "cuMemFreeHost");
  TP_DRV(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  TP_DRV(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  TP_DRV(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  TP_DRV(cuMemsetD32Async, "cuMemsetD32Async");
  TP_DRV(cuStreamCreate, "cuStreamCreate");
  TP_DRV(cuStreamDestroy, "cuStreamDestroy_v2");
  TP_DRV(cuStreamSynchronize, "cuStreamSynchronize");
  TP_DRV(cuStreamQuery, "cuStreamQuery");
  TP_DRV(cuStreamWaitEvent, "cuStreamWaitEvent");
  TP_DRV(cuLaunchHostFunc, "cuLaunchHostFunc");
  TP_DRV(cuEventCreate, "cuEventCreate");
  TP_DRV(cuEventRecord, "cuEventRecord");
  TP_DRV(cuEventQuery, "cuEventQuery");
  TP_DRV(cuEventSynchronize, "cuEventSynchronize");
  TP_DRV(cuEventDestroy, "cuEventDestroy_v2");
  TP_DRV(cuModuleLoadData, "cuModuleLoadData");
  TP_DRV(cuModuleUnload, "cuModuleUnload");
  TP_DRV(cuModuleGetFunction, "cuModuleGetFunction");
  TP_DRV(cuFuncSetAttribute, "cuFuncSetAttribute");
  TP_DRV(cuLaunchKernel, "cuLaunchKernel");
#undef TP_DRV
  if (!m.empty()) return;
  int version = 0;
  if (d.cuDriverGetVersion(&version) == CUDA_SUCCESS) st.version = version;
  st.initStatus = d.cuInit(0);
}

void resolveCublasLt(void* h, LibraryState& st) {
  CublasLt& c = g_cublaslt;
  auto& m = st.missing;
  bind(h, c.cublasLtCreate, "cublasLtCreate", m);
  bind(h, c.cublasLtDestroy, "cublasLtDestroy", m);
  bind(h, c.cublasLtGetVersion, "cublasLtGetVersion", m);
  bind(h, c.cublasLtGetStatusName, "cublasLtGetStatusName", m, false);
  bind(h, c.cublasLtGetStatusString, "cublasLtGetStatusString", m, false);
  bind(h, c.cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate", m);
  bind(h, c.cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy", m);
  bind(h, c.cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute", m);
  bind(h, c.cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate", m);
  bind(h, c.cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy", m);
  bind(h, c.cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate", m);
  bind(h, c.cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy", m);
  bind(h, c.cublasLtMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute", m);
  bind(h, c.cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic", m);
  bind(h, c.cublasLtMatmul, "cublasLtMatmul", m);
  if (m.empty()) st.version = static_cast<long long>(c.cublasLtGetVersion());
}

void resolveNccl(void* h, LibraryState& st) {
  Nccl& n = g_nccl;
  auto& m = st.missing;
  bind(h, n.ncclGetVersion, "ncclGetVersion", m);
  bind(h, n.ncclGetUniqueId, "ncclGetUniqueId", m);
  bind(h, n.ncclCommInitRankConfig, "ncclCommInitRankConfig", m);
  bind(h, n.ncclCommGetAsyncError, "ncclCommGetAsyncError", m);
  bind(h, n.ncclCommAbort, "ncclCommAbort", m);
  bind(h, n.ncclCommDestroy, "ncclCommDestroy", m);
  bind(h, n.ncclGetErrorString, "ncclGetErrorString", m);
  bind(h, n.ncclGetLastError, "ncclGetLastError", m, false);
  bind(h, n.ncclAllReduce, "ncclAllReduce", m);
  bind(h, n.ncclAllGather, "ncclAllGather", m);
  bind(h, n.ncclBroadcast, "ncclBroadcast", m);
  if (!m.empty()) return;
  int version = 0;
  if (n.ncclGetVersion(&version) == ncclSuccess) st.version = version;
}

}  // namespace

const char* libName(Lib lib) {
  switch (lib) {
    case Lib::Cuda:
      return "cuda";
    case Lib::CublasLt:
      return "cublasLt";
    case Lib::Nccl:
      return "nccl";
  }
  return "?";
}

const LibraryState& loadLibrary(Lib lib, const std::vector<std::string>& candidates) {
  std::lock_guard<std::mutex> lock(loadMutex());
  Slot& s = slot(lib);
  if (s.state.loaded) return s.state;
  s.state = LibraryState();
  s.state.tried = true;
  if (lib == Lib::Nccl) {
    // NCCL >= 2.30 lets two ranks share a GPU only with this set, and reads it once per process:
    // set it before NCCL first runs, unless the user chose a value.
    setenv("NCCL_MULTI_RANK_GPU_ENABLE", "1", 0);
  }
  // A copy already in the process (another addon, a preload) is preferred to a second one.
  std::vector<std::string> order;
  for (const auto& c : candidates) {
    std::string soname = baseName(c);
    void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (h) {
      order.push_back(soname);
      break;
    }
  }
  order.insert(order.end(), candidates.begin(), candidates.end());
  for (const auto& c : order) {
    dlerror();
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      s.state.attempts.push_back({c, lastDlError()});
      continue;
    }
    LibraryState st = s.state;
    st.missing.clear();
    switch (lib) {
      case Lib::Cuda:
        resolveDriver(h, st);
        break;
      case Lib::CublasLt:
        resolveCublasLt(h, st);
        break;
      case Lib::Nccl:
        resolveNccl(h, st);
        break;
    }
    if (!st.missing.empty()) {
      std::string text = "lacks";
      for (const auto& name : st.missing) text += " " + name;
      st.attempts.push_back({c, text});
      s.state = st;
      continue;  // try the next candidate (never dlclose: see libs.h)
    }
    st.attempts.push_back({c, ""});
    st.loaded = true;
    st.candidate = c;
    Dl_info info;
    void* any = dlsym(h, lib == Lib::Cuda ? "cuInit" : lib == Lib::CublasLt ? "cublasLtCreate" : "ncclGetVersion");
    st.path = (any && dladdr(any, &info) && info.dli_fname) ? info.dli_fname : c;
    s.state = st;
    s.handle = h;
    g_ready[static_cast<int>(lib)].store(true, std::memory_order_release);
    break;
  }
  return s.state;
}

LibraryState libraryState(Lib lib) {
  std::lock_guard<std::mutex> lock(loadMutex());
  return slot(lib).state;
}

const Driver* driver() { return g_ready[0].load(std::memory_order_acquire) ? &g_driver : nullptr; }
const CublasLt* cublasLt() { return g_ready[1].load(std::memory_order_acquire) ? &g_cublaslt : nullptr; }
const Nccl* nccl() { return g_ready[2].load(std::memory_order_acquire) ? &g_nccl : nullptr; }

std::string dlopenCheck(const std::string& path) {
  dlerror();
  void* h = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
  if (!h) return lastDlError();
  dlclose(h);
  return "";
}

std::mutex& ncclDeviceMutex(int device) {
  static std::mutex* locks = leakedArray<std::mutex, 256>();
  return locks[(device < 0 ? 0 : device) % 256];
}

}  // namespace tp

#ifdef TP_LOCAL_THROW_BAD_ARRAY_NEW_LENGTH
namespace std {
[[noreturn]] void __throw_bad_array_new_length() { throw std::bad_array_new_length(); }
}  // namespace std
#endif

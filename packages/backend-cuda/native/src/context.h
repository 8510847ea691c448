// One rank's device state: the primary context of its GPU, one stream, pinned staging rings for
// copies, a cuBLASLt handle and workspace, and completion notifications that resolve promises on the
// rank's own JS thread (cuLaunchHostFunc → a thread-safe function), so no JS thread ever blocks on
// the device.
#pragma once

#include <napi.h>

#include <map>
#include <string>
#include <vector>

#include "decls.h"

namespace tp {

/** Throw a JS Error carrying library, call, status, statusName and statusText (src/errors.ts reads them). */
[[noreturn]] void throwStatus(Napi::Env env, const char* library, const std::string& call, int status, const std::string& detail = "");

/** Pinned host memory in `slots` equal parts, each reused once the stream has passed its previous use. */
struct Staging {
  char* base = nullptr;
  size_t slotBytes = 0;
  int slots = 0;
  int slot = 0;
  size_t offset = 0;
  std::vector<CUevent> events;
  std::vector<bool> used;
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;

  CUstream stream() const { return stream_; }
  int device() const { return device_; }
  /** Make this context current on the calling thread (cheap when it already is). */
  void makeCurrent(Napi::Env env);
  /** Called on the JS thread when a notification arrives. */
  void finishJob(Napi::Env env, struct Job* job);

 private:
  Napi::Value Alloc(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Fill32(const Napi::CallbackInfo& info);
  Napi::Value LoadModule(const Napi::CallbackInfo& info);
  Napi::Value GetFunction(const Napi::CallbackInfo& info);
  Napi::Value SetMaxDynamicShared(const Napi::CallbackInfo& info);
  Napi::Value Launch(const Napi::CallbackInfo& info);
  Napi::Value Gemm(const Napi::CallbackInfo& info);
  Napi::Value EventCreate(const Napi::CallbackInfo& info);
  Napi::Value EventRecord(const Napi::CallbackInfo& info);
  Napi::Value WaitEvent(const Napi::CallbackInfo& info);
  Napi::Value EventDestroy(const Napi::CallbackInfo& info);
  Napi::Value Notify(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  Napi::Value EnablePeer(const Napi::CallbackInfo& info);
  Napi::Value MemInfo(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void check(Napi::Env env);
  char* reserve(Napi::Env env, Staging& s, size_t bytes);
  void enqueueJob(Napi::Env env, struct Job* job, char* dst, const char* src, size_t n);
  void release(bool throwing, Napi::Env env);

  int device_ = -1;
  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
  CUstream stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  CUdeviceptr workspace_ = 0;
  size_t workspaceBytes_ = 0;
  Staging up_, down_;
  napi_threadsafe_function tsfn_ = nullptr;
  int pending_ = 0;
  bool disposed_ = true;
  std::vector<CUmodule> modules_;
  std::vector<CUcontext> peers_;
  std::vector<CUdevice> peerDevices_;
  std::map<std::string, cublasLtMatmulAlgo_t> algos_;
};

/** An NCCL communicator of one rank, created non-blocking: poll status() until it is not "in progress". */
class NcclComm : public Napi::ObjectWrap<NcclComm> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit NcclComm(const Napi::CallbackInfo& info);
  ~NcclComm() override;

 private:
  Napi::Value Status(const Napi::CallbackInfo& info);
  Napi::Value AllReduce(const Napi::CallbackInfo& info);
  Napi::Value AllGather(const Napi::CallbackInfo& info);
  Napi::Value Broadcast(const Napi::CallbackInfo& info);
  Napi::Value LastError(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  int checked(Napi::Env env, const char* call, int result);

  Context* context_ = nullptr;
  Napi::ObjectReference contextRef_;
  ncclComm_t comm_ = nullptr;
  int device_ = 0;
};

}  // namespace tp

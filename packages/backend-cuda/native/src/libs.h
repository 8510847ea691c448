// Process-wide CUDA libraries: each is dlopen'ed once (from the candidates the TypeScript side
// computed), its entry points resolved into a table, and shared by every rank thread. Handles are
// never closed (other threads may hold function pointers until the process ends).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "decls.h"

namespace tp {

enum class Lib { Cuda = 0, CublasLt = 1, Nccl = 2 };
constexpr int LIB_COUNT = 3;

struct Attempt {
  std::string candidate;
  std::string error;  // empty when this candidate loaded
};

struct LibraryState {
  bool tried = false;
  bool loaded = false;
  std::string candidate;  // the candidate that loaded
  std::string path;       // the file it resolved to (dladdr)
  std::vector<Attempt> attempts;
  std::vector<std::string> missing;  // required entry points the library lacks
  long long version = 0;             // cuDriverGetVersion / cublasLtGetVersion / ncclGetVersion
  // The driver only: cuInit's status (0 = initialised).
  int initStatus = -1;
};

const char* libName(Lib lib);

/** Load `lib` from the first candidate that works (a path, or a bare soname for the system loader). Thread-safe; loads once. */
const LibraryState& loadLibrary(Lib lib, const std::vector<std::string>& candidates);

/** A copy of the library's state (for reports). */
LibraryState libraryState(Lib lib);

/** The entry-point tables, or nullptr while the library is not loaded. */
const Driver* driver();
const CublasLt* cublasLt();
const Nccl* nccl();

/** dlopen `path` as a check only (RTLD_LAZY | RTLD_LOCAL), then close it: "" when it loads, else dlerror's text. */
std::string dlopenCheck(const std::string& path);

/** One lock per device around NCCL host calls: concurrent calls from threads of one device are unsafe. */
std::mutex& ncclDeviceMutex(int device);

}  // namespace tp

// cuBLASLt for the prefill GEMMs (issue #3: "bf16 in, f32 accumulate" on the tensor cores).
// The library is loaded at run time with dlopen, so neither libkiln_runtime nor a host that
// embeds it links cuBLAS, and a machine without it still runs every plan on kiln's own kernels.
//   KILN_CUBLASLT=off        never use it (the built-in tiled kernel does every GEMM);
//   KILN_CUBLASLT=/path/.so  load exactly that file;
//   unset                    libcublasLt.so.<major this build was compiled against>, through the
//                            loader's search path, then CUDA_HOME and /usr/local/cuda.
// Only this file's .cpp includes cublasLt.h; it is built only with the CUDA backend.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kernels/matmul.h"
#include "runtime/status.h"

namespace kiln {

// A matmul goes through cuBLASLt when the library is there and the launch is prefill-sized
// (more rows than matmul_cuda's GEMV takes) with bf16 or f16 weights. x is then rounded to the
// weight dtype first, so the result differs from the f32 kernel by bf16/f16 rounding of x:
// the CUDA tests bound it per dtype (tests/cuda/test_cuda.cpp).
bool library_gemm_eligible(const MatmulArgs& a);
// Bytes of x packed to 16 bits for one eligible launch.
uint64_t library_gemm_x_bytes(const MatmulArgs& a);
// cuBLASLt's workspace, shared by every GEMM of an executor (launches run one at a time).
constexpr uint64_t kCublasLtWorkspaceBytes = uint64_t(32) << 20;

class CublasLt : public std::enable_shared_from_this<CublasLt> {
 public:
  struct Api;  // the loaded library's entry points (cublaslt.cpp)
  using Gemm = std::function<Status(cudaStream_t)>;

  // Loads the library (see above) and creates a handle on the current device. Fails with
  // kUnsupported, saying why, when it is switched off, missing, or of another major version.
  static Result<std::shared_ptr<CublasLt>> open();
  // Only the loading half of open(), which needs no GPU: the file and every entry point kiln
  // calls, and its version. Returns "cuBLASLt <version> (<file>)".
  static Result<std::string> probe();
  ~CublasLt();
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;

  // "cuBLASLt 13.0.2 (libcublasLt.so.13)".
  const std::string& describe() const { return description_; }

  // Plans y = x·wᵀ (+ y when accumulating) (+ bias) for `a` and returns the launch: pack x into
  // `x16` (library_gemm_x_bytes(a) bytes), the cuBLASLt GEMM with `workspace`, then the bias.
  // The algorithm is chosen here, once, so stream mode and every graph replay run the same one;
  // split-K schemes that reduce in place (with atomics) are excluded, so results are
  // deterministic. Fails with kUnsupported when cuBLASLt offers no algorithm for the shape.
  Result<Gemm> bind(const MatmulArgs& a, void* x16, void* workspace, uint64_t workspace_bytes);

 private:
  CublasLt() = default;
  std::shared_ptr<const Api> api_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  std::string description_;
};

}  // namespace kiln

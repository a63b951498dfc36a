// cuBLASLt through dlopen (see cublaslt.h). Row-major y (rows, m) = x (rows, k) · w (m, k)ᵀ is,
// in cuBLAS's column-major terms, D (m × rows) = Aᵀ · B with A = w as a k × m matrix (ld k) and
// B = x as a k × rows matrix (ld k): the "TN" GEMM, cuBLASLt's best-served layout.
#include "runtime/cublaslt.h"

#include <cublasLt.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

bool library_gemm_eligible(const MatmulArgs& a) {
  return a.rows > kGemvMaxRows && (a.w_dtype == DType::BF16 || a.w_dtype == DType::F16) && a.k > 0 && a.m > 0;
}

uint64_t library_gemm_x_bytes(const MatmulArgs& a) { return uint64_t(a.rows) * uint64_t(a.k) * 2; }

struct CublasLt::Api {
  void* lib = nullptr;
  std::string file;
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtGetVersion) version = nullptr;
  decltype(&cublasLtGetStatusString) status_string = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  ~Api() {
    if (lib) dlclose(lib);
  }

  std::string error(cublasStatus_t st, const char* what) const {
    return std::string(what) +
           " failed: " + (status_string ? status_string(st) : "cuBLAS status " + std::to_string(int(st)));
  }
};

namespace {

std::string version_string(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

// Every descriptor of one planned GEMM, destroyed with it.
struct LtGemm {
  std::shared_ptr<const CublasLt::Api> api;
  std::shared_ptr<const CublasLt> owner;  // keeps the handle alive while a launch can run
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  float alpha = 1.0f, beta = 0.0f;
  ~LtGemm() {
    if (lc) api->layout_destroy(lc);
    if (lb) api->layout_destroy(lb);
    if (la) api->layout_destroy(la);
    if (desc) api->desc_destroy(desc);
  }
};

// The largest power of two (up to 256) that divides the address, for the alignment preferences.
uint32_t alignment_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

}  // namespace

namespace {

Result<std::shared_ptr<const CublasLt::Api>> load_cublaslt_api() {
  const char* env = std::getenv("KILN_CUBLASLT");
  const std::string choice = env ? env : "";
  if (choice == "off" || choice == "0") return unsupported("cuBLASLt switched off by KILN_CUBLASLT=" + choice);
  std::vector<std::string> candidates;
  const std::string so = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
  if (!choice.empty()) {
    candidates.push_back(choice);
  } else {
    candidates.push_back(so);
    if (const char* home = std::getenv("CUDA_HOME")) {
      candidates.push_back(std::string(home) + "/lib64/" + so);
      candidates.push_back(std::string(home) + "/lib/" + so);
    }
    for (const char* dir :
         {"/usr/local/cuda/lib64/", "/usr/local/cuda/lib/", "/usr/local/cuda/targets/x86_64-linux/lib/"})
      candidates.push_back(dir + so);
  }
  auto api = std::make_shared<CublasLt::Api>();
  std::string tried;
  for (const std::string& c : candidates) {
    api->lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (api->lib) {
      api->file = c;
      break;
    }
    const char* why = dlerror();
    tried += "\n  " + c + ": " + (why ? why : "not found");
  }
  if (!api->lib) return unsupported("cuBLASLt not loaded; tried:" + tried);
  bool missing = false;
  std::string which;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(api->lib, name));
    if (!fn) {
      missing = true;
      which += std::string(which.empty() ? "" : ", ") + name;
    }
  };
  sym(api->create, "cublasLtCreate");
  sym(api->destroy, "cublasLtDestroy");
  sym(api->version, "cublasLtGetVersion");
  sym(api->status_string, "cublasLtGetStatusString");
  sym(api->desc_create, "cublasLtMatmulDescCreate");
  sym(api->desc_destroy, "cublasLtMatmulDescDestroy");
  sym(api->desc_set, "cublasLtMatmulDescSetAttribute");
  sym(api->layout_create, "cublasLtMatrixLayoutCreate");
  sym(api->layout_destroy, "cublasLtMatrixLayoutDestroy");
  sym(api->pref_create, "cublasLtMatmulPreferenceCreate");
  sym(api->pref_destroy, "cublasLtMatmulPreferenceDestroy");
  sym(api->pref_set, "cublasLtMatmulPreferenceSetAttribute");
  sym(api->heuristic, "cublasLtMatmulAlgoGetHeuristic");
  sym(api->matmul, "cublasLtMatmul");
  if (missing) return unsupported(api->file + " lacks " + which);
  const size_t v = api->version();
  if (v / 10000 != CUBLAS_VER_MAJOR)
    return unsupported(api->file + " is cuBLASLt " + version_string(v) + ", but kiln was built against major version " +
                       std::to_string(CUBLAS_VER_MAJOR));
  return std::shared_ptr<const CublasLt::Api>(std::move(api));
}

}  // namespace

Result<std::string> CublasLt::probe() {
  auto api = load_cublaslt_api();
  if (!api.is_ok()) return api.status();
  return "cuBLASLt " + version_string(api.value()->version()) + " (" + api.value()->file + ")";
}

Result<std::shared_ptr<CublasLt>> CublasLt::open() {
  auto api = load_cublaslt_api();
  if (!api.is_ok()) return api.status();
  std::shared_ptr<CublasLt> lt(new CublasLt());
  lt->api_ = api.take();
  cublasLtHandle_t h = nullptr;
  const cublasStatus_t st = lt->api_->create(&h);
  if (st != CUBLAS_STATUS_SUCCESS) return unsupported(lt->api_->error(st, "cublasLtCreate"));
  lt->handle_ = h;
  lt->description_ = "cuBLASLt " + version_string(lt->api_->version()) + " (" + lt->api_->file + ")";
  return lt;
}

CublasLt::~CublasLt() {
  if (handle_) api_->destroy(static_cast<cublasLtHandle_t>(handle_));
}

Result<CublasLt::Gemm> CublasLt::bind(const MatmulArgs& a, void* x16, void* workspace, uint64_t workspace_bytes) {
  if (!library_gemm_eligible(a)) return invalid_argument("matmul is not eligible for cuBLASLt");
  const Api& api = *api_;
  auto g = std::make_shared<LtGemm>();
  g->api = api_;
  g->owner = shared_from_this();
  g->handle = static_cast<cublasLtHandle_t>(handle_);
  g->beta = a.accumulate ? 1.0f : 0.0f;
  const cudaDataType_t in_type = a.w_dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  cublasStatus_t st = api.desc_create(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st != CUBLAS_STATUS_SUCCESS) return Status(StatusCode::kInternal, api.error(st, "cublasLtMatmulDescCreate"));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  api.desc_set(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a));
  api.desc_set(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b));
  const uint64_t m = uint64_t(a.m), k = uint64_t(a.k), n = uint64_t(a.rows);
  if ((st = api.layout_create(&g->la, in_type, k, m, int64_t(k))) != CUBLAS_STATUS_SUCCESS ||
      (st = api.layout_create(&g->lb, in_type, k, n, int64_t(k))) != CUBLAS_STATUS_SUCCESS ||
      (st = api.layout_create(&g->lc, CUDA_R_32F, m, n, int64_t(m))) != CUBLAS_STATUS_SUCCESS)
    return Status(StatusCode::kInternal, api.error(st, "cublasLtMatrixLayoutCreate"));

  cublasLtMatmulPreference_t pref = nullptr;
  if ((st = api.pref_create(&pref)) != CUBLAS_STATUS_SUCCESS)
    return Status(StatusCode::kInternal, api.error(st, "cublasLtMatmulPreferenceCreate"));
  const uint64_t ws = workspace_bytes;
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                           CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;  // no in-place (atomic) split-K
  const uint32_t al_a = alignment_of(a.w), al_b = alignment_of(x16), al_c = alignment_of(a.y);
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes));
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
  api.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  st = api.heuristic(g->handle, g->desc, g->la, g->lb, g->lc, g->lc, pref, 1, &result, &found);
  api.pref_destroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found < 1 || result.state != CUBLAS_STATUS_SUCCESS)
    return unsupported("cuBLASLt has no algorithm for a " + std::to_string(n) + "x" + std::to_string(k) + " by " +
                       std::to_string(m) + " GEMM" +
                       (st != CUBLAS_STATUS_SUCCESS ? ": " + api.error(st, "heuristic") : ""));
  g->algo = result.algo;

  const MatmulArgs args = a;
  return Gemm([g, args, x16, workspace, ws](cudaStream_t s) -> Status {
    matmul_pack_x_cuda(args, x16, s);
    const cublasStatus_t r = g->api->matmul(g->handle, g->desc, &g->alpha, args.w, g->la, x16, g->lb, &g->beta, args.y,
                                            g->lc, args.y, g->lc, &g->algo, workspace, ws, s);
    if (r != CUBLAS_STATUS_SUCCESS) return Status(StatusCode::kInternal, g->api->error(r, "cublasLtMatmul"));
    matmul_add_bias_cuda(args, s);
    return Status::ok();
  });
}

}  // namespace kiln

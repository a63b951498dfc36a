// moe_route (kernels/moe.h): each token's top-k experts and their weights (DeepSeek's gating).
#include "kernels/moe.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "h", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "gate", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "ids", 2));
  const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], e = c.in(1)->shape[0], k = c.out(0).shape[1];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "h", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "gate", kFloatTypes, {e, dim}));
  if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", kFloatTypes, {e}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(3, rows));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "ids", {DType::I32}, {rows, k}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "weights", {DType::F32}, {rows, k}));
  const int64_t method = c.iattr(0), scoring = c.iattr(1), groups = c.iattr(2), topk_group = c.iattr(3);
  const bool v4 = c.launch().float_attrs.size() > 2;  // (version 4: jitter_eps, sparsemixer)
  if (method < 0 || method > (v4 ? 3 : 2) || scoring < 0 || scoring > 1 || (c.iattr(4) != 0 && c.iattr(4) != 1))
    return invalid_argument("routing attributes are invalid");
  if (v4 && method != 3 && c.fattr(2) != 0)
    return invalid_argument("jitter_eps must be 0 for a routing other than sparsemixer");
  if (method == 3 && (k != 2 || scoring != 0 || c.iattr(4) != 0 || c.has_in(2) || c.fattr(2) < 0))
    return invalid_argument(
        "sparsemixer routing picks two experts from softmax logits, without a bias or renormalization, by a "
        "jitter_eps of at least 0");
  if (k > e) return invalid_argument("top_k exceeds the number of experts");
  if (k < 1 || k > kMaxMoeTopK) return invalid_argument("top_k is not in [1, " + std::to_string(kMaxMoeTopK) + "]");
  if ((method == 1 || method == 2) &&
      (groups <= 0 || groups > 64 || e % groups != 0 || topk_group <= 0 || topk_group > groups ||
       k > cmul(topk_group, e / groups) || (method == 2 && e / groups < 2)))
    return invalid_argument("expert groups are invalid");
  if (method == 2 && !c.has_in(2)) return invalid_argument("noaux_tc routing needs the correction bias");
  if (c.launch().int_attrs.size() > 5) {  // version 2: logit_bias
    if (c.iattr(5) != 0 && c.iattr(5) != 1) return invalid_argument("routing attributes are invalid");
    if (c.iattr(5) == 1 && (method == 2 || !c.has_in(2)))
      return invalid_argument("a logit bias needs the bias input and a routing other than noaux_tc");
  }
  *scratch = moe_route_scratch_floats(e, dim, c.in(1)->dtype);
  return Status::ok();
}

MoeRouteArgs args(const OpLaunch& l) {
  return {l.in_f32(0),
          l.in_ptr(1),
          l.in(1)->dtype,
          l.in_ptr(2),
          l.has_in(2) ? l.in(2)->dtype : DType::F32,
          static_cast<int32_t*>(l.out_ptr(0)),
          l.out_f32(1),
          l.in(0)->shape[0],
          l.in(0)->shape[1],
          l.in(1)->shape[0],
          l.out(0).shape[1],
          MoeTopk(l.iattr(0)),
          MoeScoring(l.iattr(1)),
          l.iattr(2),
          l.iattr(3),
          l.iattr(4) != 0,
          l.fattr32(0),
          l.in_i32(3),
          l.batch_of(3),
          l.launch().int_attrs.size() > 5 && l.iattr(5) == 1,
          l.launch().float_attrs.size() > 1,
          l.launch().float_attrs.size() > 1 ? l.fattr32(1) : 0.0f,
          l.launch().float_attrs.size() > 2 ? l.fattr32(2) : 0.0f};
}

#ifdef KILN_WITH_CUDA
// The gate logits of every row, between the two kernels of moe_route_cuda.
uint64_t cuda_scratch_bytes(const OpLaunch& l) { return moe_route_cuda_scratch_floats(args(l)) * sizeof(float); }

Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const MoeRouteArgs a = args(l);
  if (a.experts > kCudaMaxExperts)
    return unsupported("CUDA MoE routing supports up to " + std::to_string(kCudaMaxExperts) + " experts");
  if (a.rows > kCudaMaxGridY)
    return unsupported("CUDA MoE routing supports up to " + std::to_string(kCudaMaxGridY) + " rows per launch");
  return CudaLaunch([a, scratch = static_cast<float*>(env.scratch)](void* s) -> Status {
    moe_route_cuda(a, scratch, static_cast<cudaStream_t>(s));
    return Status::ok();
  });
}
#endif

}  // namespace

// Version 2 added the logit_bias attribute, version 3 the norm_min float attribute, version 4 jitter_eps and the
// sparsemixer routing; older plans still load.
const OpDef kMoeRouteOp{"moe_route",
                        2,
                        4,
                        2,
                        6,
                        1,
                        {{3, "n_valid"}},
                        1,
                        false,
                        validate,
                        bind_cpu_kernel<args, moe_route_cpu>,
                        KILN_CUDA_BIND(bind_cuda),
                        KILN_CUDA_BIND(cuda_scratch_bytes)};

const OpDef kMoeRouteOpV4 = [] {
  OpDef d = kMoeRouteOp;
  d.version = 4;
  d.n_float_attrs = 3;
  return d;
}();

const OpDef kMoeRouteOpV3 = [] {
  OpDef d = kMoeRouteOp;
  d.version = 3;
  d.n_float_attrs = 2;
  return d;
}();

const OpDef kMoeRouteOpV1 = [] {
  OpDef d = kMoeRouteOp;
  d.version = 1;
  d.n_int_attrs = 5;
  return d;
}();

}  // namespace kiln

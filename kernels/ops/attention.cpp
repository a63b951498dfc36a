// attention (kernels/attention.h): causal GQA attention over the KV cache. On CUDA, launches of a
// few rows take the split-K (flash-decoding) kernel pair, whose partials use the launch scratch.
#include "kernels/attention.h"

#include <cmath>
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(check_qkv_and_caches(c, c.in(0), c.in(1), c.in(2), c.in(3), c.in(4)));
  const int64_t rows = c.in(0)->shape[0], h = c.iattr(0), hd = c.iattr(2);
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", {DType::F32}, {rows, cmul(h, hd)}));
  if (c.launch().int_attrs.size() > 3 && (c.iattr(3) < 0 || c.iattr(3) > c.in(1)->shape[1]))
    return invalid_argument("sliding window is negative or longer than the cache");
  if (c.launch().float_attrs.size() > 1 && !(std::isfinite(c.fattr32(1)) && c.fattr32(1) >= 0))
    return invalid_argument("attention softcap is negative or not finite");
  if (c.launch().inputs.size() > 5 && c.has_in(5)) KILN_RETURN_IF_ERROR(c.expect(c.in(5), "sinks", {DType::F32}, {h}));
  if (c.launch().inputs.size() > 6 && c.has_in(6)) KILN_RETURN_IF_ERROR(c.expect(c.in(6), "alibi", {DType::F32}, {h}));
  *scratch = attention_scratch_floats(c.model().max_seq, hd);
  return Status::ok();
}

AttentionArgs args(const OpLaunch& l) {
  const int64_t b = l.in(1)->shape[0];
  return {l.in_f32(0),
          l.in_ptr(1),
          l.in_ptr(2),
          l.in(1)->dtype,
          l.in_i32(3),
          l.in_i32(4),
          l.out_f32(0),
          b,
          l.in(0)->shape[0] / b,
          l.in(1)->shape[1],
          l.iattr(0),
          l.iattr(1),
          l.iattr(2),
          l.fattr32(0),
          l.launch().int_attrs.size() > 3 ? l.iattr(3) : 0,
          l.launch().float_attrs.size() > 1 ? l.fattr32(1) : 0.0f,
          l.launch().inputs.size() > 5 ? static_cast<const float*>(l.in_ptr(5)) : nullptr,
          l.launch().inputs.size() > 6 ? static_cast<const float*>(l.in_ptr(6)) : nullptr};
}

#ifdef KILN_WITH_CUDA
uint64_t cuda_scratch_bytes(const OpLaunch& l) { return attention_cuda_scratch_floats(args(l)) * sizeof(float); }

Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const AttentionArgs a = args(l);
  if (a.head_dim > kCudaMaxHeadDim)
    return unsupported("CUDA attention supports head_dim up to " + std::to_string(kCudaMaxHeadDim) + ", the plan has " +
                       std::to_string(a.head_dim));
  if (attention_cuda_splits(a) > 0)
    return CudaLaunch([a, scratch = static_cast<float*>(env.scratch)](void* s) -> Status {
      attention_split_cuda(a, scratch, static_cast<cudaStream_t>(s));
      return Status::ok();
    });
  return bind_cuda_kernel<args, attention_cuda>(l, env);
}
#endif

}  // namespace

// Version 2 added the window attribute, version 3 the softcap, version 4 the sinks, version 5 the ALiBi slopes;
// plans of every earlier version still load.
const OpDef kAttentionOp{"attention",
                         5,
                         7,
                         1,
                         4,
                         2,
                         {{3, "start_pos"}, {4, "n_valid"}},
                         2,
                         false,
                         validate,
                         bind_cpu_kernel<args, attention_cpu>,
                         KILN_CUDA_BIND(bind_cuda),
                         KILN_CUDA_BIND(cuda_scratch_bytes)};

const OpDef kAttentionOpV4 = [] {
  OpDef d = kAttentionOp;
  d.version = 4;
  d.n_inputs = 6;
  return d;
}();

const OpDef kAttentionOpV3 = [] {
  OpDef d = kAttentionOpV4;
  d.version = 3;
  d.n_inputs = 5;
  return d;
}();

const OpDef kAttentionOpV2 = [] {
  OpDef d = kAttentionOpV3;
  d.version = 2;
  d.n_float_attrs = 1;
  return d;
}();

const OpDef kAttentionOpV1 = [] {
  OpDef d = kAttentionOpV2;
  d.version = 1;
  d.n_int_attrs = 3;
  return d;
}();

}  // namespace kiln

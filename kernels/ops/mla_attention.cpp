// mla_attention (kernels/mla.h): attention of absorbed queries over the MLA latent cache.
#include "kernels/mla.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  const int64_t heads = c.iattr(0), rank = c.iattr(1), rope = c.iattr(2);
  if (!all_positive({heads, rank, rope})) return invalid_argument("head attributes are invalid");
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "q_lat", 2));
  const int64_t rows = c.in(0)->shape[0];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "q_lat", {DType::F32}, {rows, cmul(heads, rank)}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "q_pe", {DType::F32}, {rows, cmul(heads, rope)}));
  int64_t b = 0;
  KILN_RETURN_IF_ERROR(check_latent_cache(c, c.in(2), c.in(3), c.in(4), rows, cadd(rank, rope), &b));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", {DType::F32}, {rows, cmul(heads, rank)}));
  *scratch = mla_scratch_floats(c.model().max_seq, rank, rope);
  return Status::ok();
}

MlaAttentionArgs args(const OpLaunch& l) {
  const int64_t b = l.in(2)->shape[0];
  return {l.in_f32(0), l.in_f32(1),  l.in_ptr(2), l.in(2)->dtype,        l.in_i32(3),
          l.in_i32(4), l.out_f32(0), b,           l.in(0)->shape[0] / b, l.in(2)->shape[1],
          l.iattr(0),  l.iattr(1),   l.iattr(2),  l.fattr32(0)};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const MlaAttentionArgs a = args(l);
  if (a.rank > kCudaMaxLatentRank || a.rope > kCudaMaxRopeDim)
    return unsupported("CUDA MLA attention supports kv_lora_rank up to " + std::to_string(kCudaMaxLatentRank) +
                       " and a RoPE dim up to " + std::to_string(kCudaMaxRopeDim));
  return bind_cuda_kernel<args, mla_attention_cuda>(l, env);
}
#endif

}  // namespace

const OpDef kMlaAttentionOp{"mla_attention",
                            1,
                            5,
                            1,
                            3,
                            1,
                            {{3, "start_pos"}, {4, "n_valid"}},
                            2,
                            false,
                            validate,
                            bind_cpu_kernel<args, mla_attention_cpu>,
                            KILN_CUDA_BIND(bind_cuda),
                            nullptr};

}  // namespace kiln

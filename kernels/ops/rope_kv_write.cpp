// rope_kv_write (kernels/fused.h): rope of every q and k head, then the KV-cache write, as the
// CUDA kernel does in one launch (formed by compiler/passes/fuse.h).
#include "kernels/fused.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(check_qkv_and_caches(c, c.in(2), &c.out(1), &c.out(2), c.in(1), c.in(3)));
  if (c.iattr(2) % 2 != 0) return invalid_argument("head_dim is odd");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "inv_freq", {DType::F32}, {c.iattr(2) / 2}));
  if (c.launch().outputs[0] != c.launch().inputs[2])
    return invalid_argument("rope_kv_write must write its qkv input in place");
  return Status::ok();
}

RopeKvWriteArgs args(const OpLaunch& l) {
  const int64_t b = l.out(1).shape[0], h = l.iattr(0), kvh = l.iattr(1), hd = l.iattr(2), rows = l.in(2)->shape[0];
  const RopeArgs r{l.out_f32(0), l.in_f32(0), l.in_i32(1), b, rows / b, l.in(2)->shape[1], h + kvh, hd, l.fattr32(0)};
  const KvWriteArgs w{
      l.in_f32(2), l.in_i32(1), l.in_i32(3), l.out_ptr(1), l.out_ptr(2), l.out(1).dtype, b, rows / b, l.out(1).shape[1],
      h,           kvh,         hd};
  return {r, w};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv&) {
  const RopeKvWriteArgs a = args(l);
  if (!rope_kv_write_cuda_supported(a.rope, a.kv))
    return unsupported("CUDA rope_kv_write needs every q and k head rotated and the [q | k | v] layout");
  return CudaLaunch([a](void* s) -> Status {
    rope_kv_write_cuda(a.rope, a.kv, static_cast<cudaStream_t>(s));
    return Status::ok();
  });
}
#endif

}  // namespace

const OpDef kRopeKvWriteOp{"rope_kv_write",
                           1,
                           4,
                           3,
                           3,
                           1,
                           {{1, "start_pos"}, {3, "n_valid"}},
                           2,
                           true,
                           validate,
                           bind_cpu_kernel<args, rope_kv_write_cpu>,
                           KILN_CUDA_BIND(bind_cuda),
                           nullptr};

}  // namespace kiln

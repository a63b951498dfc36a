// embedding (kernels/embedding.h): rows of a table by token id.
#include "kernels/embedding.h"

#include <cmath>

#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* tok = c.in(0);
  const TensorInfo* table = c.in(1);
  KILN_RETURN_IF_ERROR(c.expect_rank(table, "table", 2));
  if (!tok || tok->dtype != DType::I32) return invalid_argument("tokens must be i32");
  KILN_RETURN_IF_ERROR(c.expect_state(tok, "tokens"));
  KILN_RETURN_IF_ERROR(c.expect(table, "table", kFloatTypes, table->shape));
  // Every id the runtime accepts (below the model's vocab_size) must have its row.
  if (table->shape[0] < c.model().vocab_size)
    return invalid_argument("the embedding table has " + std::to_string(table->shape[0]) +
                            " rows, fewer than vocab_size " + std::to_string(c.model().vocab_size));
  if (!c.launch().float_attrs.empty() && !std::isfinite(c.fattr32(0)))
    return invalid_argument("embedding scale is not finite");
  return c.expect(&c.out(0), "y", {DType::F32}, {tok->numel(), table->shape[1]});
}

EmbeddingArgs args(const OpLaunch& l) {
  return {l.in_i32(0),      l.in_ptr(1),       l.in(1)->dtype,    l.out_f32(0),
          l.in(0)->numel(), l.in(1)->shape[0], l.in(1)->shape[1], l.launch().float_attrs.empty() ? 1.0f : l.fattr32(0)};
}

}  // namespace

// Version 2 added the scale; version 1 plans (scale 1) still load.
const OpDef kEmbeddingOp{"embedding",
                         2,
                         2,
                         1,
                         0,
                         1,
                         {{0, "tokens"}},
                         1,
                         false,
                         validate,
                         bind_cpu_kernel<args, embedding_cpu>,
                         KILN_CUDA_BIND(bind_cuda_kernel<args, embedding_cuda>),
                         nullptr};

const OpDef kEmbeddingOpV1 = [] {
  OpDef d = kEmbeddingOp;
  d.version = 1;
  d.n_float_attrs = 0;
  return d;
}();

}  // namespace kiln

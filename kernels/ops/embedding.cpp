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
  if (c.launch().inputs.size() > 2 && (c.has_in(2) || c.has_in(3))) {  // (version 3: learned positions)
    const TensorInfo* start = c.in(2);
    const TensorInfo* pos = c.in(3);
    if (!start || !pos) return invalid_argument("start_pos and pos_table come together");
    KILN_RETURN_IF_ERROR(c.expect_batch_state(2, "start_pos", tok->numel()));
    KILN_RETURN_IF_ERROR(c.expect_rank(pos, "pos_table", 2));
    KILN_RETURN_IF_ERROR(c.expect(pos, "pos_table", kFloatTypes, {pos->shape[0], table->shape[1]}));
    // Every position a token of the plan can hold (below max_seq) must have its row.
    if (pos->shape[0] < c.model().max_seq)
      return invalid_argument("the position table has " + std::to_string(pos->shape[0]) + " rows, fewer than max_seq " +
                              std::to_string(c.model().max_seq));
  }
  return c.expect(&c.out(0), "y", {DType::F32}, {tok->numel(), table->shape[1]});
}

EmbeddingArgs args(const OpLaunch& l) {
  EmbeddingArgs a{
      l.in_i32(0),      l.in_ptr(1),       l.in(1)->dtype,    l.out_f32(0),
      l.in(0)->numel(), l.in(1)->shape[0], l.in(1)->shape[1], l.launch().float_attrs.empty() ? 1.0f : l.fattr32(0)};
  if (l.launch().inputs.size() > 2 && l.has_in(3)) {
    a.start_pos = l.in_i32(2);
    a.pos_table = l.in_ptr(3);
    a.pos_dtype = l.in(3)->dtype;
    a.batch = l.in(2)->shape[0];
    a.positions = l.in(3)->shape[0];
  }
  return a;
}

}  // namespace

// Version 3 added the learned position table (and its start_pos); version 2 the scale. Version 2 plans (and
// version 1's, scale 1) still load, and plans without positions are still written as version 2.
const OpDef kEmbeddingOp{"embedding",
                         3,
                         4,
                         1,
                         0,
                         1,
                         {{0, "tokens"}, {2, "start_pos"}},
                         2,
                         false,
                         validate,
                         bind_cpu_kernel<args, embedding_cpu>,
                         KILN_CUDA_BIND(bind_cuda_kernel<args, embedding_cuda>),
                         nullptr};

const OpDef kEmbeddingOpV2 = older_version(kEmbeddingOp, 2, 2, 1);

const OpDef kEmbeddingOpV1 = [] {
  OpDef d = kEmbeddingOpV2;
  d.version = 1;
  d.n_float_attrs = 0;
  return d;
}();

}  // namespace kiln

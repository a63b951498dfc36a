// CPU MoE: the router (one row per work item) and the routed experts (per token and selected
// expert: the gate|up rows in parallel, then the down rows in parallel, a few rows side by side).
#include "kernels/moe.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/simd.h"
#include "kernels/host_device.h"
#include "kernels/matmul.h"
#include "kernels/moe_select.h"

namespace kiln {

void moe_route_cpu(const MoeRouteArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch, E = a.experts;
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int worker) {
    float* scores = pool.scratch(worker);  // E (the layout of moe_route_scratch_floats)
    float* choice = scores + E;            // E
    float* widened = choice + E;           // dim, for an f16 gate
    uint8_t* taken = reinterpret_cast<uint8_t*>(
        widened + (a.gate_dtype == DType::F32 || a.gate_dtype == DType::BF16 ? 0 : a.dim));  // E
    for (int64_t r = r0; r < r1; ++r) {
      int32_t* ids = a.ids + r * a.top_k;
      float* w = a.weights + r * a.top_k;
      if (!row_is_valid(a.n_valid, chunk, r)) {
        for (int64_t k = 0; k < a.top_k; ++k) ids[k] = -1, w[k] = 0.0f;
        continue;
      }
      const float* h = a.h + r * a.dim;
      const uint64_t esz = dtype_size(a.gate_dtype);
      for (int64_t e = 0; e < E; ++e)
        scores[e] = dot_f32_any(h, static_cast<const uint8_t*>(a.gate) + uint64_t(e * a.dim) * esz, a.gate_dtype, a.dim,
                                widened) +
                    (a.logit_bias ? load_as_f32(a.bias, a.bias_dtype, uint64_t(e)) : 0.0f);
      if (a.method == MoeTopk::kSparseMixer) {  // (from the raw logits)
        moe_sparsemixer(a, scores, ids, w);
        moe_finish_weights(a, w);
        continue;
      }
      if (a.scoring == MoeScoring::kSoftmax) {
        float mx = scores[0];
        for (int64_t e = 1; e < E; ++e) mx = std::max(mx, scores[e]);
        double sum = 0.0;
        for (int64_t e = 0; e < E; ++e) sum += (scores[e] = std::exp(scores[e] - mx));
        for (int64_t e = 0; e < E; ++e) scores[e] = float(scores[e] / sum);
      } else {
        for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-scores[e]));
      }
      for (int64_t e = 0; e < E; ++e)
        choice[e] = scores[e] + (a.method == MoeTopk::kNoauxTc ? load_as_f32(a.bias, a.bias_dtype, uint64_t(e)) : 0.0f);
      std::fill(taken, taken + E, uint8_t(0));
      moe_select(a, scores, choice, ids, w, taken);
    }
  });
}

void moe_experts_cpu(const MoeExpertsArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  for (int64_t r = 0; r < a.rows; ++r) {
    if (!row_is_valid(a.n_valid, chunk, r)) continue;
    const float* h = a.h + r * a.dim;
    float* y = a.y + r * a.dim;
    if (!a.accumulate) std::fill(y, y + a.dim, 0.0f);  // (version 5: y = the sum)
    for (int64_t k = 0; k < a.top_k; ++k) {
      const int32_t e = a.ids[r * a.top_k + k];
      if (e < 0 || e >= a.experts) continue;
      const float wk = a.weights[r * a.top_k + k];
      float* act = a.ws + (r * a.top_k + k) * a.ffn;
      const int64_t gu0 = int64_t(e) * 2 * a.ffn;  // the expert's first gate row; its up rows follow
      // Rows side by side (weight_rows_dot): the gate and up rows of two features, then 4 down rows.
      pool.parallel_for(a.ffn, 8, [&](int64_t f0, int64_t f1, int w) {
        for (int64_t f = f0; f < f1; f += 2) {
          const int nf = int(std::min<int64_t>(2, f1 - f));
          const int64_t rows[4] = {gu0 + f, gu0 + a.ffn + f, gu0 + f + 1, gu0 + a.ffn + f + 1};
          float gu[4];
          weight_rows_dot(h, a.w_gu, a.w_dtype, a.gu_scale, a.gu_group, rows, 2 * nf, a.dim, pool.scratch(w), gu,
                          a.gu_zero);
          for (int i = 0; i < nf; ++i) {
            float g = gu[2 * i], u = gu[2 * i + 1];
            if (a.gu_bias) g += a.gu_bias[gu0 + f + i], u += a.gu_bias[gu0 + a.ffn + f + i];
            act[f + i] = a.activation == MoeActivation::kClampedSwiglu ? moe_clamped_swiglu(g, u, a.alpha, a.limit)
                                                                       : g / (1.0f + std::exp(-g)) * u;
          }
        }
      });
      pool.parallel_for(a.dim, 8, [&](int64_t d0, int64_t d1, int w) {
        for (int64_t d = d0; d < d1; d += kWeightRowsDotMax) {
          const int n = int(std::min<int64_t>(kWeightRowsDotMax, d1 - d));
          int64_t rows[kWeightRowsDotMax];
          float out[kWeightRowsDotMax];
          for (int i = 0; i < n; ++i) rows[i] = int64_t(e) * a.dim + d + i;
          weight_rows_dot(act, a.w_down, a.w_dtype, a.down_scale, a.down_group, rows, n, a.ffn, pool.scratch(w), out,
                          a.down_zero);
          for (int i = 0; i < n; ++i)
            y[d + i] += wk * (a.down_bias ? out[i] + a.down_bias[int64_t(e) * a.dim + d + i] : out[i]);
        }
      });
    }
  }
}

}  // namespace kiln

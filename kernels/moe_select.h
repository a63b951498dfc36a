// The part of DeepSeek's MoE gate after scoring, shared by the CPU router and the CUDA router
// (one warp per token there, the argmax of each pick spread over it), so the two cannot drift apart: group-limited masking, top-k,
// optional renormalisation and the routed scaling factor, as transformers' MoEGate does them.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/moe.h"

namespace kiln {

// Group-limited routing's first step: choice (the E selection scores) keeps only the topk_group
// best groups; the others are masked in place. Nothing to do for greedy routing.
KILN_HOST_DEVICE inline void moe_mask_groups(const MoeRouteArgs& a, float* choice) {
  const int64_t E = a.experts;
  if (a.method != MoeTopk::kGreedy) {
    // Keep the topk_group best groups; a group scores its max (group_limited_greedy) or the sum
    // of its two best choices (noaux_tc). transformers masks the dropped groups with 0 (V2) or
    // -inf (V3's noaux_tc).
    constexpr int64_t kMaxGroups = 64;
    const int64_t per = E / a.n_group, G = a.n_group < kMaxGroups ? a.n_group : kMaxGroups;
    float gscore[kMaxGroups];
    bool keep[kMaxGroups];
    for (int64_t g = 0; g < G; ++g) {
      float b1 = -INFINITY, b2 = -INFINITY;
      for (int64_t i = 0; i < per; ++i) {
        const float c = choice[g * per + i];
        if (c > b1) b2 = b1, b1 = c;
        else if (c > b2) b2 = c;
      }
      gscore[g] = a.method == MoeTopk::kGroupLimitedGreedy ? b1 : b1 + b2;
      keep[g] = false;
    }
    for (int64_t k = 0; k < a.topk_group && k < G; ++k) {  // stable: the lower group wins a tie
      int64_t best = -1;
      for (int64_t g = 0; g < G; ++g)
        if (!keep[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
      keep[best] = true;
    }
    const float masked = a.method == MoeTopk::kNoauxTc ? -INFINITY : 0.0f;
    for (int64_t g = 0; g < G; ++g)
      if (!keep[g])
        for (int64_t i = 0; i < per; ++i) choice[g * per + i] = masked;
  }
}

// The top_k highest choices in order (ties go to the lower id; a NaN already chosen as best stays
// best), each with its score as weight. taken: E flags, all 0 on entry (marks the chosen).
KILN_HOST_DEVICE inline void moe_top_k(const MoeRouteArgs& a, const float* scores, const float* choice, int32_t* ids,
                                       float* w, uint8_t* taken) {
  const int64_t E = a.experts;
  for (int64_t k = 0; k < a.top_k; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (!taken[e] && (best < 0 || choice[e] > choice[best])) best = e;
    ids[k] = int32_t(best);
    w[k] = scores[best];
    taken[best] = 1;
  }
}

// The chosen weights renormalised (norm_topk_prob: over their sum plus 1e-20, or with sum_floor over max(sum,
// norm_min), as torch.clamp keeps a NaN sum) and scaled.
KILN_HOST_DEVICE inline void moe_finish_weights(const MoeRouteArgs& a, float* w) {
  if (a.norm_topk_prob) {
    double sum = 0.0;
    for (int64_t k = 0; k < a.top_k; ++k) sum += w[k];
    const double denom = !a.sum_floor ? sum + 1e-20 : sum < double(a.norm_min) ? double(a.norm_min) : sum;
    for (int64_t k = 0; k < a.top_k; ++k) w[k] = float(w[k] / denom);
  }
  for (int64_t k = 0; k < a.top_k; ++k) w[k] *= a.routed_scaling_factor;
}

// Phi-3.5-MoE's sparsemixer as transformers computes it in eval (training off), in f32, from the E raw logits s: the
// best expert (the highest logit, the lower id on a tie), its weight the softmax at it over the experts e whose
// (max − s_e) / max(|s_e|, max) is at most 2·jitter_eps (the others masked to −inf; a NaN ratio masks nothing); then
// the same for the best of the others, the first one masked too (its threshold's factor still |s_e| clamped at the
// second max). Always two experts (top_k 2), whatever num_experts_per_tok says. (A NaN logit is never the best here
// unless it comes first, where torch.max picks it; the weights are NaN either way.)
KILN_HOST_DEVICE inline void moe_sparsemixer(const MoeRouteArgs& a, const float* s, int32_t* ids, float* w) {
  const int64_t E = a.experts;
  const float bound = 2.0f * a.jitter_eps;
  int64_t first = -1;
  for (int k = 0; k < 2; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e)
      if (e != first && (best < 0 || s[e] > s[best])) best = e;
    const float m = s[best];
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) {
      if (e == first) continue;
      const float mag = s[e] < 0.0f ? -s[e] : s[e];
      if ((m - s[e]) / (mag < m ? m : mag) > bound) continue;
      sum += expf(s[e] - m);
    }
    ids[k] = int32_t(best);
    w[k] = 1.0f / sum;  // (exp(s_best − max) is 1)
    first = best;
  }
}

// scores: the E expert scores (softmax or sigmoid); choice: the E selection scores (scores plus
// the noaux_tc bias), masked in place. Writes top_k ids (ties go to the lower id) and weights.
KILN_HOST_DEVICE inline void moe_select(const MoeRouteArgs& a, const float* scores, float* choice, int32_t* ids,
                                        float* w, uint8_t* taken) {
  moe_mask_groups(a, choice);
  moe_top_k(a, scores, choice, ids, w, taken);
  moe_finish_weights(a, w);
}

}  // namespace kiln

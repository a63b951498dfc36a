#include "compiler/frontends/deepseek.h"

#include <cmath>

#include "compiler/error.h"
#include "compiler/frontends/common.h"
#include "compiler/frontends/frontend.h"
#include "kernels/head_matmul.h"
#include "kernels/matmul.h"
#include "kernels/mla.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace kiln {

namespace {

// Index of layer in "model.layers.<N>.…", or -1.
int64_t layer_of(const std::string& name) {
  static const std::string p = "model.layers.";
  if (name.compare(0, p.size(), p) != 0) return -1;
  int64_t v = 0;
  size_t i = p.size();
  if (i >= name.size() || !isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && isdigit(static_cast<unsigned char>(name[i])) && v < (int64_t(1) << 40); ++i)
    v = v * 10 + (name[i] - '0');
  return v;
}

bool is_mtp(const std::string& name, const DeepseekConfig& c) {
  const int64_t l = layer_of(name);
  return l >= c.num_hidden_layers && l < c.num_hidden_layers + c.num_nextn_predict_layers;
}

// Rows [begin, end) of a row-major (rows, cols) matrix.
std::vector<float> rows_of(const std::vector<float>& w, int64_t cols, int64_t begin, int64_t end) {
  return std::vector<float>(w.begin() + begin * cols, w.begin() + end * cols);
}

}  // namespace

std::map<std::string, std::vector<int64_t>> deepseek_tensor_shapes(const DeepseekConfig& c) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, qk = c.qk_head_dim();
  const int64_t r = c.kv_lora_rank, rope = c.qk_rope_head_dim, nope = c.qk_nope_head_dim, v = c.v_head_dim;
  std::map<std::string, std::vector<int64_t>> e;
  e["model.embed_tokens.weight"] = {c.vocab_size, D};
  e["model.norm.weight"] = {D};
  if (!c.tie_word_embeddings) e["lm_head.weight"] = {c.vocab_size, D};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = hf_layer_prefix(i), a = p + "self_attn.";
    e[p + "input_layernorm.weight"] = {D};
    e[p + "post_attention_layernorm.weight"] = {D};
    if (c.q_lora_rank > 0) {
      e[a + "q_a_proj.weight"] = {c.q_lora_rank, D};
      e[a + "q_a_layernorm.weight"] = {c.q_lora_rank};
      e[a + "q_b_proj.weight"] = {H * qk, c.q_lora_rank};
      if (c.attention_bias) e[a + "q_a_proj.bias"] = {c.q_lora_rank};
    } else {
      e[a + "q_proj.weight"] = {H * qk, D};
    }
    e[a + "kv_a_proj_with_mqa.weight"] = {r + rope, D};
    e[a + "kv_a_layernorm.weight"] = {r};
    e[a + "kv_b_proj.weight"] = {H * (nope + v), r};
    e[a + "o_proj.weight"] = {D, H * v};
    if (c.attention_bias) {
      e[a + "kv_a_proj_with_mqa.bias"] = {r + rope};
      e[a + "o_proj.bias"] = {D};
    }
    const std::string m = p + "mlp.";
    if (!c.is_moe_layer(i)) {
      e[m + "gate_proj.weight"] = {c.intermediate_size, D};
      e[m + "up_proj.weight"] = {c.intermediate_size, D};
      e[m + "down_proj.weight"] = {D, c.intermediate_size};
      continue;
    }
    const int64_t F = c.moe_intermediate_size;
    e[m + "gate.weight"] = {c.n_routed_experts, D};
    if (c.v3) e[m + "gate.e_score_correction_bias"] = {c.n_routed_experts};
    for (int64_t x = 0; x < c.n_routed_experts; ++x) {
      const std::string ex = m + "experts." + std::to_string(x) + ".";
      e[ex + "gate_proj.weight"] = {F, D};
      e[ex + "up_proj.weight"] = {F, D};
      e[ex + "down_proj.weight"] = {D, F};
    }
    if (c.n_shared_experts > 0) {
      const int64_t Fs = F * c.n_shared_experts;
      e[m + "shared_experts.gate_proj.weight"] = {Fs, D};
      e[m + "shared_experts.up_proj.weight"] = {Fs, D};
      e[m + "shared_experts.down_proj.weight"] = {D, Fs};
    }
  }
  return e;
}

void check_deepseek_tensors(const DeepseekConfig& c, const Checkpoint& ck, size_t* mtp_tensors) {
  check_layer_count(c.num_hidden_layers, ck, 9);
  size_t mtp = 0;
  for (const auto& kv : ck.all()) mtp += is_mtp(kv.first, c);
  if (mtp_tensors) *mtp_tensors = mtp;
  // (n_shared_experts 0: transformers builds, and saves, each MoE layer's shared MLP with empty tensors: gate_proj
  // and up_proj [0, hidden_size], down_proj [hidden_size, 0])
  auto empty_shared = [&](const std::string& n) {
    const int64_t l = layer_of(n);
    if (c.n_shared_experts != 0 || l < 0 || l >= c.num_hidden_layers || !c.is_moe_layer(l)) return false;
    const std::string p = hf_layer_prefix(l) + "mlp.shared_experts.";
    const std::vector<int64_t> in = {0, c.hidden_size}, out = {c.hidden_size, 0};
    const std::vector<int64_t>& s = ck.find(n)->shape;
    return ((n == p + "gate_proj.weight" || n == p + "up_proj.weight") && s == in) ||
           (n == p + "down_proj.weight" && s == out);
  };
  check_checkpoint_tensors(deepseek_tensor_shapes(c), ck, [&](const std::string& n) {
    return is_mtp(n, c) || n.find("rotary_emb.inv_freq") != std::string::npos ||
           (c.tie_word_embeddings && n == "lm_head.weight") || gptq_zero_bias(n, ck) || empty_shared(n);
  });
}

Graph build_deepseek_graph(const DeepseekConfig& c, const DeepseekBuildOptions& o) {
  Graph g;
  const DType wt = o.plan_dtype;
  const int64_t D = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads, B = o.batch, S = o.max_seq;
  const int64_t r = c.kv_lora_rank, rope = c.qk_rope_head_dim, nope = c.qk_nope_head_dim, vd = c.v_head_dim;
  const int64_t qk = c.qk_head_dim();
  const std::vector<int64_t> perm = deinterleave(rope, c.rope_interleave);
  auto w = [&](const std::string& name, std::vector<int64_t> shape, std::vector<std::string> parts, DType t) {
    return g.weight(name, t, std::move(shape), WeightSource{std::move(parts), {}, nullptr});
  };
  auto built = [&](const std::string& name, std::vector<int64_t> shape,
                   std::function<std::vector<float>(const WeightFetch&)> f) {
    return g.weight(name, wt, std::move(shape), WeightSource{{}, {}, std::move(f)});
  };

  struct Layer {
    uint32_t attn_norm, q_a = kNoTensor, q_a_b = kNoTensor, q_a_norm = kNoTensor, q_nope, q_pe, kv_c,
                        kv_c_b = kNoTensor, kv_pe, kv_pe_b = kNoTensor, kv_norm, w_ukt, w_uv, o, o_b = kNoTensor,
                        mlp_norm, cache;
    bool moe = false;
    uint32_t gu = kNoTensor, down = kNoTensor;  // dense MLP or shared experts
    uint32_t gate = kNoTensor, gate_bias = kNoTensor, egu = kNoTensor, edown = kNoTensor;  // routed experts
  };
  const uint32_t embed = w("model.embed_tokens.weight", {V, D}, {"model.embed_tokens.weight"}, wt);
  std::vector<Layer> layers;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = hf_layer_prefix(i), a = p + "self_attn.", m = p + "mlp.";
    Layer L;
    L.attn_norm = w(p + "input_layernorm.weight", {D}, {p + "input_layernorm.weight"}, wt);
    const std::string qname = c.q_lora_rank > 0 ? a + "q_b_proj.weight" : a + "q_proj.weight";
    const int64_t qin = c.q_lora_rank > 0 ? c.q_lora_rank : D;
    if (c.q_lora_rank > 0) {
      L.q_a = w(a + "q_a_proj.weight", {c.q_lora_rank, D}, {a + "q_a_proj.weight"}, wt);
      if (c.attention_bias) L.q_a_b = w(a + "q_a_proj.bias", {c.q_lora_rank}, {a + "q_a_proj.bias"}, wt);
      L.q_a_norm = w(a + "q_a_layernorm.weight", {c.q_lora_rank}, {a + "q_a_layernorm.weight"}, wt);
    }
    // q rows per head are [nope | rope]: split them, and put the rope rows in rotate-half order; kv_a's
    // rows are [c_KV (r) | k_rope]. Rows of the checkpoint tensors, so --quantize and FP8 keep them.
    std::vector<int64_t> nope_rows, pe_rows, c_rows, kpe_rows;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < nope; ++j) nope_rows.push_back(h * qk + j);
      for (int64_t j : perm) pe_rows.push_back(h * qk + nope + j);
    }
    for (int64_t j = 0; j < r; ++j) c_rows.push_back(j);
    for (int64_t j : perm) kpe_rows.push_back(r + j);
    const std::string kva = a + "kv_a_proj_with_mqa.";
    auto row_w = [&](const std::string& name, int64_t cols, const std::string& part, const std::vector<int64_t>& rws) {
      return g.weight(name, wt, {int64_t(rws.size()), cols}, WeightSource{{part}, {}, nullptr, rws});
    };
    L.q_nope = row_w(a + "q_nope.weight", qin, qname, nope_rows);
    L.q_pe = row_w(a + "q_pe.weight", qin, qname, pe_rows);
    L.kv_c = row_w(a + "kv_c.weight", D, kva + "weight", c_rows);
    L.kv_pe = row_w(a + "kv_pe.weight", D, kva + "weight", kpe_rows);
    if (c.attention_bias) {
      L.kv_c_b = g.weight(a + "kv_c.bias", wt, {r}, WeightSource{{kva + "bias"}, {}, nullptr, c_rows});
      L.kv_pe_b = g.weight(a + "kv_pe.bias", wt, {rope}, WeightSource{{kva + "bias"}, {}, nullptr, kpe_rows});
    }
    L.kv_norm = w(a + "kv_a_layernorm.weight", {r}, {a + "kv_a_layernorm.weight"}, wt);
    // kv_b_proj rows per head are [k_nope (nope) | v (vd)], columns the latent (r).
    const std::string kvb = a + "kv_b_proj.weight";
    if (o.kv_b_rows) {
      std::vector<int64_t> uk_rows, uv_rows;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t j = 0; j < nope; ++j) uk_rows.push_back(h * (nope + vd) + j);
        for (int64_t j = 0; j < vd; ++j) uv_rows.push_back(h * (nope + vd) + nope + j);
      }
      L.w_ukt = row_w(a + "w_uk.weight", r, kvb, uk_rows);
      L.w_uv = row_w(a + "w_uv.weight", r, kvb, uv_rows);
    } else {
      L.w_ukt = built(a + "w_uk_t.weight", {H, r, nope}, [=](const WeightFetch& f) {
        const auto kv = f(kvb);
        std::vector<float> out(size_t(H * r * nope));
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i2 = 0; i2 < r; ++i2)
            for (int64_t j = 0; j < nope; ++j)
              out[size_t((h * r + i2) * nope + j)] = kv[size_t((h * (nope + vd) + j) * r + i2)];
        return out;
      });
      L.w_uv = built(a + "w_uv.weight", {H, vd, r}, [=](const WeightFetch& f) {
        const auto kv = f(kvb);
        std::vector<float> out;
        for (int64_t h = 0; h < H; ++h) {
          const auto rws = rows_of(kv, r, h * (nope + vd) + nope, (h + 1) * (nope + vd));
          out.insert(out.end(), rws.begin(), rws.end());
        }
        return out;
      });
    }
    L.o = w(a + "o_proj.weight", {D, H * vd}, {a + "o_proj.weight"}, wt);
    if (c.attention_bias) L.o_b = w(a + "o_proj.bias", {D}, {a + "o_proj.bias"}, wt);
    L.mlp_norm = w(p + "post_attention_layernorm.weight", {D}, {p + "post_attention_layernorm.weight"}, wt);
    L.cache = g.kv(p + "latent_cache", wt, {B, S, r + rope});
    L.moe = c.is_moe_layer(i);
    if (!L.moe) {
      const int64_t F = c.intermediate_size;
      L.gu = w(m + "gate_up_proj.weight", {2 * F, D}, {m + "gate_proj.weight", m + "up_proj.weight"}, wt);
      L.down = w(m + "down_proj.weight", {D, F}, {m + "down_proj.weight"}, wt);
    } else {
      const int64_t F = c.moe_intermediate_size, E = c.n_routed_experts;
      // The router stays f32, as transformers keeps it.
      L.gate = w(m + "gate.weight", {E, D}, {m + "gate.weight"}, DType::F32);
      if (c.v3)
        L.gate_bias = w(m + "gate.e_score_correction_bias", {E}, {m + "gate.e_score_correction_bias"}, DType::F32);
      std::vector<std::string> gu_parts, down_parts;
      for (int64_t x = 0; x < E; ++x) {
        const std::string ex = m + "experts." + std::to_string(x) + ".";
        gu_parts.push_back(ex + "gate_proj.weight");
        gu_parts.push_back(ex + "up_proj.weight");
        down_parts.push_back(ex + "down_proj.weight");
      }
      L.egu = w(m + "experts.gate_up_proj.weight", {E * 2 * F, D}, gu_parts, wt);
      L.edown = w(m + "experts.down_proj.weight", {E * D, F}, down_parts, wt);
      if (c.n_shared_experts > 0) {
        const int64_t Fs = F * c.n_shared_experts;
        const std::string sh = m + "shared_experts.";
        L.gu = w(sh + "gate_up_proj.weight", {2 * Fs, D}, {sh + "gate_proj.weight", sh + "up_proj.weight"}, wt);
        L.down = w(sh + "down_proj.weight", {D, Fs}, {sh + "down_proj.weight"}, wt);
      }
    }
    layers.push_back(L);
  }
  const uint32_t norm = w("model.norm.weight", {D}, {"model.norm.weight"}, wt);
  const uint32_t lm_head = c.tie_word_embeddings ? embed : w("lm_head.weight", {V, D}, {"lm_head.weight"}, wt);
  const uint32_t inv_freq =
      g.weight("rope.inv_freq", DType::F32, {rope / 2}, WeightSource{{}, rope_inv_freq(c.rope, rope), nullptr});
  const double rope_scale = rope_attention_factor(c.rope);

  const uint32_t start_pos = g.state("start_pos", {B});
  const uint32_t n_valid = g.state("n_valid", {B});
  const double eps = c.rms_norm_eps, lat_eps = 1e-6;  // q_a/kv_a layernorms use transformers' default eps
  for (const LmProgramSpec& spec : lm_programs(o.chunk)) {
    LmProgramStart st = begin_lm_program(g, spec, B, D, embed);
    GraphProgram& P = st.program;
    const int64_t N = st.rows;
    const std::string& a = st.prefix;
    const uint32_t tokens = st.tokens, x = st.x;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const Layer& L = layers[size_t(i)];
      const std::string p = a + "layers." + std::to_string(i) + ".";
      auto act = [&](const std::string& n, std::vector<int64_t> s, DType t = DType::F32) {
        return g.activation(p + n, std::move(s), t);
      };
      const uint32_t h = act("attn_in", {N, D});
      add_node(P, kRmsNormOp, {x, L.attn_norm, n_valid}, {h}, {}, {eps});
      uint32_t qsrc = h;
      if (c.q_lora_rank > 0) {
        const uint32_t qa = act("q_a", {N, c.q_lora_rank}), qan = act("q_a_norm", {N, c.q_lora_rank});
        add_node(P, kMatmulOp, {h, L.q_a, L.q_a_b, n_valid}, {qa}, {0});
        add_node(P, kRmsNormOp, {qa, L.q_a_norm, n_valid}, {qan}, {}, {lat_eps});
        qsrc = qan;
      }
      const uint32_t q_nope = act("q_nope", {N, H * nope}), q_pe = act("q_pe", {N, H * rope});
      add_node(P, kMatmulOp, {qsrc, L.q_nope, kNoTensor, n_valid}, {q_nope}, {0});
      add_node(P, kMatmulOp, {qsrc, L.q_pe, kNoTensor, n_valid}, {q_pe}, {0});
      add_node(P, kRopeOp, {inv_freq, start_pos, q_pe, n_valid}, {q_pe}, {H, rope}, {rope_scale});
      const uint32_t ckv = act("c_kv", {N, r}), ckvn = act("c_kv_norm", {N, r}), kpe = act("k_pe", {N, rope});
      add_node(P, kMatmulOp, {h, L.kv_c, L.kv_c_b, n_valid}, {ckv}, {0});
      add_node(P, kRmsNormOp, {ckv, L.kv_norm, n_valid}, {ckvn}, {}, {lat_eps});
      add_node(P, kMatmulOp, {h, L.kv_pe, L.kv_pe_b, n_valid}, {kpe}, {0});
      add_node(P, kRopeOp, {inv_freq, start_pos, kpe, n_valid}, {kpe}, {1, rope}, {rope_scale});
      add_node(P, kMlaKvWriteOp, {ckvn, kpe, start_pos, n_valid}, {L.cache});
      const uint32_t q_lat = act("q_lat", {N, H * r}), o_lat = act("o_lat", {N, H * r}), o_v = act("o_v", {N, H * vd});
      if (o.kv_b_rows)  // int attrs {heads, transposed, group}; w_scale and w_zero added by quantize_weights
        add_node(P, kHeadMatmulOpV2, {q_nope, L.w_ukt, n_valid, kNoTensor, kNoTensor}, {q_lat}, {H, 1, 0});
      else add_node(P, kHeadMatmulOp, {q_nope, L.w_ukt, n_valid}, {q_lat});
      add_node(P, kMlaAttentionOp, {q_lat, q_pe, L.cache, start_pos, n_valid}, {o_lat}, {H, r, rope},
               {c.softmax_scale()});
      if (o.kv_b_rows) add_node(P, kHeadMatmulOpV2, {o_lat, L.w_uv, n_valid, kNoTensor, kNoTensor}, {o_v}, {H, 0, 0});
      else add_node(P, kHeadMatmulOp, {o_lat, L.w_uv, n_valid}, {o_v});
      add_node(P, kMatmulOp, {o_v, L.o, L.o_b, n_valid}, {x}, {1});  // x += o_proj(attention)
      const uint32_t h2 = act("mlp_in", {N, D});
      add_node(P, kRmsNormOp, {x, L.mlp_norm, n_valid}, {h2}, {}, {eps});
      if (L.moe) {
        const int64_t K = c.num_experts_per_tok;
        const uint32_t ids = act("expert_ids", {N, K}, DType::I32), ew = act("expert_weights", {N, K});
        const uint32_t ws = act("expert_act", {N * K, c.moe_intermediate_size});
        add_node(P, kMoeRouteOpV1, {h2, L.gate, L.gate_bias, n_valid}, {ids, ew},
                 {int64_t(c.topk_method), int64_t(c.scoring), c.n_group, c.topk_group, c.norm_topk_prob ? 1 : 0},
                 {c.routed_scaling_factor});
        add_node(P, kMoeExpertsOp, {h2, ids, ew, L.egu, L.edown, n_valid}, {x, ws});  // x += routed experts
      }
      if (L.gu != kNoTensor) {  // the dense MLP, or the shared experts
        const int64_t F = L.moe ? c.moe_intermediate_size * c.n_shared_experts : c.intermediate_size;
        const uint32_t gu = act("gate_up", {N, 2 * F}), mact = act("mlp_act", {N, F});
        add_node(P, kMatmulOp, {h2, L.gu, kNoTensor, n_valid}, {gu}, {0});
        add_node(P, kSwigluOp, {gu, n_valid}, {mact});
        add_node(P, kMatmulOp, {mact, L.down, kNoTensor, n_valid}, {x}, {1});
      }
    }
    finish_lm_program(g, std::move(st), x, norm, lm_head, eps, {tokens, start_pos, n_valid});
  }
  set_lm_info(g, c.architecture, V, S, B, o.chunk, c.dtype, wt, c.raw_json);
  return g;
}

namespace {

FrontendBuild build_deepseek(const CompileOptions& o) {
  refuse_pipeline_options(o);
  DeepseekConfig c = read_deepseek_config(o.model_dir + "/config.json");
  const std::string key_note = check_config_keys(c.unmodeled, o.model_dir + "/config.json", o);
  FrontendBuild b;
  b.checkpoint = Checkpoint::open_dir(o.model_dir);
  const ConfigReader::Quantization& q = c.quant;
  unpack_prequantized(o, q, b.checkpoint, c.num_hidden_layers);
  size_t mtp_scales = 0;
  const std::string fp8_note = q.fp8
                                   ? attach_fp8_weights(o, b.checkpoint, q.fp8_block_rows, q.fp8_block_cols,
                                                        c.num_hidden_layers, &mtp_scales, q.fp8_scales, &b.fp8_weights)
                                   : "";
  const std::string head_note = embedding_from_tied_head(b.checkpoint, c.tie_word_embeddings);
  const std::string tie_note = untie_distinct_head(b.checkpoint, &c.tie_word_embeddings);
  refuse_prequantized_embedding(b.checkpoint, c.tie_word_embeddings);
  b.fp8_dtype_upcasts = q.fp8_scales == "weight_scale_inv";
  size_t mtp_tensors = 0;
  check_deepseek_tensors(c, b.checkpoint, &mtp_tensors);
  mtp_tensors += mtp_scales;
  // (peft's transformers 5 conversion maps deepseek_v2, deepseek_v3 and glm4_moe_lite to Qwen2-MoE's: its MLP
  // targets go to the fused experts; youtu has no conversion, its MLPs being dense)
  LoraSet::ModuleNames names;
  if (!c.youtu) names.moe_fused_targets = {"gate_proj", "up_proj", "down_proj"};
  b.lora = LoraSet::load(o.lora, b.checkpoint, c.tie_word_embeddings, names);
  const std::string lora_note = check_lora_config_keys(b.lora, o);
  const std::string untie_note = untie_saved_copies(b.lora, &c.tie_word_embeddings);
  const DType stored = b.checkpoint.find("model.embed_tokens.weight")->dtype;
  const DType plan_dtype = parse_plan_dtype(o.dtype, stored);
  const std::string dtype_note = config_dtype_note(o, c.has_dtype, c.dtype, stored);
  // Pre-quantized weights that stay as shipped without --quantize (FP8 unless --dtype upcasts it).
  const bool kept_quantized = !q.prequantized.empty() || (q.fp8 && keeps_fp8(o, b.fp8_dtype_upcasts));
  const LlmLimits lim = llm_limits(o, c.max_position_embeddings, kept_quantized);
  // kv_b as rows wherever quantize_weights may quantize or keep weights (compile_model's rule).
  const bool kv_b_rows = quantizes_weights(o, kept_quantized);
  Graph& g = b.graph =
      build_deepseek_graph(c, DeepseekBuildOptions{plan_dtype, lim.max_seq, lim.batch, lim.chunk, kv_b_rows});
  const int64_t H = c.num_attention_heads;
  g.info.kv_bytes_per_token =
      uint64_t(c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim)) * dtype_size(plan_dtype);
  g.info.mha_kv_bytes_per_token =
      uint64_t(c.num_hidden_layers * H * (c.qk_head_dim() + c.v_head_dim)) * dtype_size(plan_dtype);
  if (mtp_tensors > 0)
    g.info.notes = "skipped " + std::to_string(mtp_tensors) + " tensors of " +
                   std::to_string(c.num_nextn_predict_layers) + " multi-token-prediction layer(s)";
  g.info.source_dtype = stored;
  read_llm_tokenizer(o, g);
  add_note(&g.info.notes, key_note);
  add_note(&g.info.notes, head_note);
  add_note(&g.info.notes, tie_note);
  add_note(&g.info.notes, lora_note);
  add_note(&g.info.notes, untie_note);
  add_note(&g.info.notes, dtype_note);
  add_note(&g.info.notes, fp8_note);
  // With --quantize none, kv_b_proj reaches the plan through per-head copies (w_uk_t, w_uv): pre-quantized
  // int8/int4, it is dequantized (FP8's own note counts its upcast weights). (As rows, compile_model's
  // notes count it with the other weights.)
  int kv_b = 0;
  for (int64_t i = 0; i < c.num_hidden_layers && !q.prequantized.empty() && !kv_b_rows; ++i)
    if (const StTensor* t = b.checkpoint.find(hf_layer_prefix(i) + "self_attn.kv_b_proj.weight"); t && t->row_scale)
      ++kv_b;
  if (kv_b > 0)
    add_note(&g.info.notes, std::to_string(kv_b) + " pre-quantized " + q.prequantized +
                                " kv_b_proj weights dequantized to " + dtype_name(plan_dtype) +
                                " (MLA's per-head absorbed weights are computed from them)");
  b.summary = llm_summary(plan_dtype, lim, g.info.notes);
  return b;
}

}  // namespace

extern const Frontend kDeepseekFrontend{"deepseek",
                                        {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "Glm4MoeLiteForCausalLM",
                                         "YoutuForCausalLM", "deepseek_v2", "deepseek_v3", "glm4_moe_lite", "youtu"},
                                        nullptr,
                                        build_deepseek};

}  // namespace kiln

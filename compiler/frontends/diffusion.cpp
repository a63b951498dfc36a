#include "compiler/frontends/diffusion.h"

#include <cmath>
#include <numeric>

#include "compiler/error.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/group_norm.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/sampler.h"
#include "kernels/sdpa.h"
#include "kernels/timestep_embedding.h"

namespace kiln {

int64_t vae_scale_factor(const VaeConfig& v) { return int64_t(1) << (v.block_out_channels.size() - 1); }

bool diffusion_tensor_ignorable(const std::string& n) {
  auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
  return starts("vae/encoder.") || starts("vae/quant_conv.") ||
         n == "text_encoder/text_model.embeddings.position_ids" || starts("text_encoder/text_projection.") ||
         starts("text_encoder/text_model.text_projection.");
}

namespace {

// A channels-last image value.
struct Img {
  uint32_t id;
  int64_t b, h, w, c;
  int64_t rows() const { return b * h * w; }
};

// Builds programs over one graph; weights are shared between programs by name.
class Builder {
 public:
  Builder(Graph& g, DType wt, std::map<std::string, std::vector<int64_t>>* expected)
      : g_(g), wt_(wt), expected_(expected) {}

  void begin(GraphProgram* p) {
    p_ = p;
    prefix_ = p->name + ".";
  }
  Graph& graph() { return g_; }

  uint32_t act(const std::string& hint, std::vector<int64_t> shape) {
    return g_.activation(prefix_ + hint + "#" + std::to_string(counter_++), std::move(shape));
  }
  Img img(const std::string& hint, int64_t b, int64_t h, int64_t w, int64_t c) {
    return Img{act(hint, {b, h, w, c}), b, h, w, c};
  }
  uint32_t rows(const Img& x) { return g_.view(x.id, prefix_ + "rows#" + std::to_string(counter_++), {x.rows(), x.c}); }
  Img as_img(uint32_t rows_id, int64_t b, int64_t h, int64_t w, int64_t c) {
    return Img{g_.view(rows_id, prefix_ + "img#" + std::to_string(counter_++), {b, h, w, c}), b, h, w, c};
  }

  // A checkpoint tensor (ck_shape as stored), cast to the plan dtype, under plan shape `shape`.
  uint32_t weight(const std::string& name, std::vector<int64_t> ck_shape, std::vector<int64_t> shape = {}) {
    record(name, ck_shape);
    if (auto it = cache_.find(name); it != cache_.end()) return it->second;
    if (shape.empty()) shape = ck_shape;
    return cache_[name] = g_.weight(name, wt_, std::move(shape), WeightSource{{name}, {}, nullptr});
  }
  // Checkpoint tensors concatenated along dim 0 (fused projections).
  uint32_t fused(const std::string& key, const std::vector<std::string>& parts, int64_t rows_each, int64_t cols) {
    for (const std::string& p : parts)
      record(p, cols > 0 ? std::vector<int64_t>{rows_each, cols} : std::vector<int64_t>{rows_each});
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    std::vector<int64_t> shape{int64_t(parts.size()) * rows_each};
    if (cols > 0) shape.push_back(cols);
    return cache_[key] = g_.weight(key, wt_, shape, WeightSource{parts, {}, nullptr});
  }
  // A conv weight, permuted from torch's (cout, cin, kh, kw) to (cout, kh, kw, cin).
  uint32_t conv_weight(const std::string& name, int64_t cout, int64_t cin, int64_t k) {
    record(name, {cout, cin, k, k});
    if (auto it = cache_.find(name); it != cache_.end()) return it->second;
    auto build = [name, cout, cin, k](const WeightFetch& fetch) {
      const std::vector<float> src = fetch(name);
      std::vector<float> dst(src.size());
      for (int64_t o = 0; o < cout; ++o)
        for (int64_t i = 0; i < cin; ++i)
          for (int64_t y = 0; y < k; ++y)
            for (int64_t x = 0; x < k; ++x)
              dst[size_t(((o * k + y) * k + x) * cin + i)] = src[size_t(((o * cin + i) * k + y) * k + x)];
      return dst;
    };
    return cache_[name] = g_.weight(name, wt_, {cout, k, k, cin}, WeightSource{{}, {}, build});
  }
  // The first `rows` rows of a (ck_rows, cols) checkpoint tensor.
  uint32_t leading_rows(const std::string& name, int64_t ck_rows, int64_t cols, int64_t rows) {
    record(name, {ck_rows, cols});
    const std::string key = name + "[:" + std::to_string(rows) + "]";
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    auto build = [name, rows, cols](const WeightFetch& fetch) {
      std::vector<float> all = fetch(name);
      all.resize(size_t(rows * cols));
      return all;
    };
    return cache_[key] = g_.weight(key, wt_, {rows, cols}, WeightSource{{}, {}, build});
  }
  uint32_t constant(const std::string& name, std::vector<int64_t> shape, std::vector<float> data) {
    if (auto it = cache_.find(name); it != cache_.end()) return it->second;
    return cache_[name] = g_.weight(name, DType::F32, std::move(shape), WeightSource{{}, std::move(data), nullptr});
  }

  void node(const OpDef& k, std::vector<uint32_t> in, std::vector<uint32_t> out, std::vector<int64_t> ia = {},
            std::vector<double> fa = {}) {
    add_node(*p_, k, std::move(in), std::move(out), std::move(ia), std::move(fa));
  }

  // --- layers
  Img conv(const Img& x, const std::string& p, int64_t cout, int64_t k, int64_t stride, int64_t pad,
           uint32_t chan_add = kNoTensor, uint32_t residual = kNoTensor, double scale = 1.0) {
    return conv_at(x, x.h, x.w, p, cout, k, stride, pad, chan_add, residual, scale);
  }
  // Upsample2D: the input's nearest-neighbour resize to h × w (2×, or the odd size of the skip the
  // UNet's up path meets next), then a 3×3 convolution.
  Img upsample_conv(const Img& x, int64_t h, int64_t w, const std::string& p, int64_t cout) {
    return conv_at(x, h, w, p, cout, 3, 1, 1);
  }
  Img group_norm(const Img& x, const std::string& p, int64_t groups, double eps, bool silu) {
    const uint32_t in = g_.view(x.id, prefix_ + "gn_in#" + std::to_string(counter_++), {x.b, x.h * x.w, x.c});
    const uint32_t out = act(p, {x.b, x.h * x.w, x.c});
    node(kGroupNormOp, {in, weight(p + ".weight", {x.c}), weight(p + ".bias", {x.c})}, {out}, {groups, silu ? 1 : 0},
         {eps});
    return as_img(out, x.b, x.h, x.w, x.c);
  }
  // Rows of x's images each replaced by the image's mean row, the first `skip` images zero.
  uint32_t image_mean(const Img& x, int64_t skip) {
    const uint32_t in = g_.view(x.id, prefix_ + "mean_in#" + std::to_string(counter_++), {x.b, x.h * x.w, x.c});
    const uint32_t out = act("image_mean", {x.b, x.h * x.w, x.c});
    node(kImageMeanOp, {in}, {out}, {skip});
    return g_.view(out, prefix_ + "rows#" + std::to_string(counter_++), {x.rows(), x.c});
  }
  uint32_t layer_norm(uint32_t x, int64_t n, int64_t d, const std::string& p, double eps) {
    const uint32_t y = act(p, {n, d});
    node(kLayerNormOpV1, {x, weight(p + ".weight", {d}), weight(p + ".bias", {d})}, {y}, {}, {eps});
    return y;
  }
  // y = x·Wᵀ (+ b); into `into` (+=) when given. conv1x1: W is stored (out, in, 1, 1).
  uint32_t linear(uint32_t x, int64_t n, const std::string& p, int64_t out, int64_t in, bool bias,
                  uint32_t into = kNoTensor, bool conv1x1 = false) {
    const uint32_t w = conv1x1 ? weight(p + ".weight", {out, in, 1, 1}, {out, in}) : weight(p + ".weight", {out, in});
    const uint32_t y = into != kNoTensor ? into : act(p, {n, out});
    node(kMatmulOp, {x, w, bias ? weight(p + ".bias", {out}) : kNoTensor, kNoTensor}, {y}, {into != kNoTensor ? 1 : 0});
    return y;
  }
  uint32_t add(uint32_t a, uint32_t b, std::vector<int64_t> shape, double scale = 1.0) {
    const uint32_t y = act("add", std::move(shape));
    node(kAddOp, {a, b, kNoTensor}, {y}, {}, {scale});
    return y;
  }

 private:
  // A convolution reading x at hv × wv (a nearest resize when that is not x's size).
  Img conv_at(const Img& x, int64_t hv, int64_t wv, const std::string& p, int64_t cout, int64_t k, int64_t stride,
              int64_t pad, uint32_t chan_add = kNoTensor, uint32_t residual = kNoTensor, double scale = 1.0) {
    if (hv < x.h || hv > 2 * x.h || wv < x.w || wv > 2 * x.w)
      throw CompileError("internal: a resize from " + std::to_string(x.h) + "×" + std::to_string(x.w) + " to " +
                         std::to_string(hv) + "×" + std::to_string(wv));
    const int64_t h = conv2d_out_size(hv, k, stride, pad), w = conv2d_out_size(wv, k, stride, pad);
    Img y = img(p, x.b, h, w, cout);
    const bool resized = hv != x.h || wv != x.w;
    node(kConv2dOp, {x.id, conv_weight(p + ".weight", cout, x.c, k), weight(p + ".bias", {cout}), chan_add, residual},
         {y.id}, {stride, pad, resized ? hv : 0, resized ? wv : 0}, {scale});
    return y;
  }
  void record(const std::string& name, const std::vector<int64_t>& shape) {
    auto [it, fresh] = expected_->emplace(name, shape);
    if (!fresh && it->second != shape) throw CompileError("internal: tensor '" + name + "' read with two shapes");
  }

  Graph& g_;
  DType wt_;
  std::map<std::string, std::vector<int64_t>>* expected_;
  std::map<std::string, uint32_t> cache_;
  GraphProgram* p_ = nullptr;
  std::string prefix_;
  int64_t counter_ = 0;
};

// ---------------------------------------------------------------------------------------
// CLIP text encoder

uint32_t build_clip(Builder& B, const ClipTextConfig& c, uint32_t tokens, int64_t G, int64_t L, uint32_t out) {
  const std::string p = "text_encoder/text_model.";
  const int64_t D = c.hidden_size, H = c.num_attention_heads, hd = D / H, N = G * L;
  uint32_t x = B.act("embed", {N, D});
  B.node(kEmbeddingOpV2, {tokens, B.weight(p + "embeddings.token_embedding.weight", {c.vocab_size, D})}, {x}, {},
         {1.0});
  // The first L rows of the position table, broadcast over the batch.
  const uint32_t pos = B.leading_rows(p + "embeddings.position_embedding.weight", c.max_position_embeddings, D, L);
  B.node(kAddOp, {x, pos, kNoTensor}, {x}, {}, {1.0});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string lp = p + "encoder.layers." + std::to_string(l) + ".";
    const uint32_t h = B.layer_norm(x, N, D, lp + "layer_norm1", c.layer_norm_eps);
    const std::string a = lp + "self_attn.";
    const uint32_t wqkv =
        B.fused(a + "qkv_proj.weight", {a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"}, D, D);
    const uint32_t bqkv = B.fused(a + "qkv_proj.bias", {a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"}, D, 0);
    const uint32_t qkv = B.act("qkv", {N, 3 * D});
    B.node(kMatmulOp, {h, wqkv, bqkv, kNoTensor}, {qkv}, {0});
    const uint32_t att = B.act("attn", {N, D});
    B.node(kSdpaOp, {qkv, qkv}, {att}, {G, H, hd, 0, D, 2 * D, 1}, {1.0 / std::sqrt(double(hd))});
    B.linear(att, N, a + "out_proj", D, D, true, x);
    const uint32_t h2 = B.layer_norm(x, N, D, lp + "layer_norm2", c.layer_norm_eps);
    const uint32_t f = B.linear(h2, N, lp + "mlp.fc1", c.intermediate_size, D, true);
    B.node(kActivationOpV1, {f}, {f}, {int64_t(c.act)});
    B.linear(f, N, lp + "mlp.fc2", D, c.intermediate_size, true, x);
  }
  B.node(kLayerNormOpV1, {x, B.weight(p + "final_layer_norm.weight", {D}), B.weight(p + "final_layer_norm.bias", {D})},
         {out}, {}, {c.layer_norm_eps});
  return out;
}

// ---------------------------------------------------------------------------------------
// UNet and ControlNet

struct UNetCtx {
  const UNetConfig* c;
  std::string p;      // "unet/" or "controlnet/"
  uint32_t temb_act;  // silu(time embedding), (G, 4·C0)
  int64_t temb_dim;
  uint32_t text;  // (G·L, cross_dim)
  int64_t L;
};

Img resnet(Builder& B, const Img& x, const std::string& p, int64_t cout, uint32_t temb_act, int64_t temb_dim,
           int64_t groups, double eps, double out_scale) {
  const Img h0 = B.group_norm(x, p + "norm1", groups, eps, true);
  uint32_t chan = kNoTensor;
  if (temb_act != kNoTensor) chan = B.linear(temb_act, x.b, p + "time_emb_proj", cout, temb_dim, true);
  const Img h1 = B.conv(h0, p + "conv1", cout, 3, 1, 1, chan);
  const Img h2 = B.group_norm(h1, p + "norm2", groups, eps, true);
  const Img sc = x.c != cout ? B.conv(x, p + "conv_shortcut", cout, 1, 1, 0) : x;
  return B.conv(h2, p + "conv2", cout, 3, 1, 1, kNoTensor, sc.id, 1.0 / out_scale);
}

Img transformer(Builder& B, const UNetCtx& u, const Img& x, const std::string& p, int64_t heads, int64_t layers) {
  const UNetConfig& c = *u.c;
  const int64_t C = x.c, N = x.rows(), hd = C / heads, X = c.cross_attention_dim, F = 4 * C;
  const Img n = B.group_norm(x, p + "norm", c.norm_num_groups, 1e-6, false);
  const uint32_t h = B.linear(B.rows(n), N, p + "proj_in", C, C, true, kNoTensor, !c.use_linear_projection);
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string bp = p + "transformer_blocks." + std::to_string(l) + ".";
    // self-attention
    const uint32_t n1 = B.layer_norm(h, N, C, bp + "norm1", 1e-5);
    const std::string a1 = bp + "attn1.";
    const uint32_t wqkv =
        B.fused(a1 + "to_qkv.weight", {a1 + "to_q.weight", a1 + "to_k.weight", a1 + "to_v.weight"}, C, C);
    const uint32_t qkv = B.act("qkv", {N, 3 * C});
    B.node(kMatmulOp, {n1, wqkv, kNoTensor, kNoTensor}, {qkv}, {0});
    const uint32_t at1 = B.act("attn1", {N, C});
    B.node(kSdpaOp, {qkv, qkv}, {at1}, {x.b, heads, hd, 0, C, 2 * C, 0}, {scale});
    B.linear(at1, N, a1 + "to_out.0", C, C, true, h);
    // cross-attention on the text states
    const uint32_t n2 = B.layer_norm(h, N, C, bp + "norm2", 1e-5);
    const std::string a2 = bp + "attn2.";
    const uint32_t q = B.linear(n2, N, a2 + "to_q", C, C, false);
    const uint32_t wkv = B.fused(a2 + "to_kv.weight", {a2 + "to_k.weight", a2 + "to_v.weight"}, C, X);
    const uint32_t kv = B.act("kv", {x.b * u.L, 2 * C});
    B.node(kMatmulOp, {u.text, wkv, kNoTensor, kNoTensor}, {kv}, {0});
    const uint32_t at2 = B.act("attn2", {N, C});
    B.node(kSdpaOp, {q, kv}, {at2}, {x.b, heads, hd, 0, 0, C, 0}, {scale});
    B.linear(at2, N, a2 + "to_out.0", C, C, true, h);
    // GEGLU feed-forward
    const uint32_t n3 = B.layer_norm(h, N, C, bp + "norm3", 1e-5);
    const uint32_t gg = B.linear(n3, N, bp + "ff.net.0.proj", 2 * F, C, true);
    const uint32_t m = B.act("geglu", {N, F});
    B.node(kGegluOp, {gg}, {m}, {int64_t(Activation::kGelu)});
    B.linear(m, N, bp + "ff.net.2", C, F, true, h);
  }
  const uint32_t o = B.linear(h, N, p + "proj_out", C, C, true, kNoTensor, !c.use_linear_projection);
  return B.as_img(B.add(o, B.rows(x), {N, C}), x.b, x.h, x.w, C);
}

// Time embedding: sinusoid of t[step] (or t[0]) → linear_1 → SiLU → linear_2 → SiLU (the
// activation every ResNet applies before its time_emb_proj).
uint32_t time_embedding(Builder& B, const UNetConfig& c, const std::string& p, uint32_t t, uint32_t step, int64_t G,
                        int64_t* temb_dim) {
  const int64_t C0 = c.block_out_channels[0], TD = 4 * C0;
  const uint32_t e = B.act("t_emb", {G, C0});
  B.node(kTimestepEmbeddingOp, {t, step}, {e}, {c.flip_sin_to_cos ? 1 : 0}, {c.freq_shift, 10000.0});
  const uint32_t h = B.linear(e, G, p + "time_embedding.linear_1", TD, C0, true);
  B.node(kActivationOpV1, {h}, {h}, {int64_t(Activation::kSilu)});
  const uint32_t emb = B.linear(h, G, p + "time_embedding.linear_2", TD, TD, true);
  B.node(kActivationOpV1, {emb}, {emb}, {int64_t(Activation::kSilu)});
  *temb_dim = TD;
  return emb;
}

// conv_in, the down blocks and the mid block; returns the skip connections (conv_in output
// first) and the mid block output. `cond` (ControlNet) is added after conv_in.
std::pair<std::vector<Img>, Img> unet_encoder(Builder& B, const UNetCtx& u, const Img& sample, uint32_t cond) {
  const UNetConfig& c = *u.c;
  const std::string& p = u.p;
  const size_t nb = c.block_out_channels.size();
  Img x = B.conv(sample, p + "conv_in", c.block_out_channels[0], 3, 1, 1);
  if (cond != kNoTensor) x = B.as_img(B.add(B.rows(x), cond, {x.rows(), x.c}), x.b, x.h, x.w, x.c);
  std::vector<Img> skips{x};
  for (size_t i = 0; i < nb; ++i) {
    const int64_t ch = c.block_out_channels[i];
    const std::string bp = p + "down_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j < c.layers_per_block; ++j) {
      x = resnet(B, x, bp + "resnets." + std::to_string(j) + ".", ch, u.temb_act, u.temb_dim, c.norm_num_groups,
                 c.norm_eps, 1.0);
      if (c.down_cross[i])
        x = transformer(B, u, x, bp + "attentions." + std::to_string(j) + ".", c.heads[i], c.transformer_layers[i]);
      skips.push_back(x);
    }
    if (i + 1 < nb) {
      x = B.conv(x, bp + "downsamplers.0.conv", ch, 3, 2, 1);
      skips.push_back(x);
    }
  }
  const int64_t ch = c.block_out_channels.back();
  const std::string mp = p + "mid_block.";
  x = resnet(B, x, mp + "resnets.0.", ch, u.temb_act, u.temb_dim, c.norm_num_groups, c.norm_eps, c.mid_block_scale);
  x = transformer(B, u, x, mp + "attentions.0.", c.heads.back(), c.transformer_layers.back());
  x = resnet(B, x, mp + "resnets.1.", ch, u.temb_act, u.temb_dim, c.norm_num_groups, c.norm_eps, c.mid_block_scale);
  return {skips, x};
}

struct ControlResiduals {
  std::vector<uint32_t> down;  // rows views, one per UNet skip
  uint32_t mid = kNoTensor;
};

// The ControlNet: its own time embedding, conv_in plus the control embedding, the UNet's
// down and mid blocks, and the zero convolutions scaled by the conditioning scale. With
// global_pool_conditions each residual is its image's mean, and with guidance the negative
// prompt's image gets none: diffusers then runs the ControlNet on the positive half only (guess
// mode) and adds zeros to the other (each image's residuals depend on that image alone, so running
// it on both and dropping one is the same).
ControlResiduals controlnet(Builder& B, const UNetConfig& c, const Img& sample, uint32_t t, uint32_t step,
                            uint32_t text, int64_t L, uint32_t cond, double scale) {
  UNetCtx u{&c, "controlnet/", kNoTensor, 0, text, L};
  u.temb_act = time_embedding(B, c, u.p, t, step, sample.b, &u.temb_dim);
  auto [skips, mid] = unet_encoder(B, u, sample, cond);
  const int64_t skip = sample.b == 2 ? 1 : 0;  // the guided batch is [negative, positive]
  auto residual = [&](const Img& z) { return c.global_pool ? B.image_mean(z, skip) : B.rows(z); };
  ControlResiduals r;
  for (size_t i = 0; i < skips.size(); ++i)
    r.down.push_back(residual(B.conv(skips[i], "controlnet/controlnet_down_blocks." + std::to_string(i), skips[i].c, 1,
                                     1, 0, kNoTensor, kNoTensor, scale)));
  r.mid = residual(B.conv(mid, "controlnet/controlnet_mid_block", mid.c, 1, 1, 0, kNoTensor, kNoTensor, scale));
  return r;
}

// The ControlNet's conditioning embedding of the control image (1, H, W, 3) → (1, h, w, C0).
Img control_embedding(Builder& B, const UNetConfig& c, const Img& image) {
  const std::string p = "controlnet/controlnet_cond_embedding.";
  const auto& ch = c.cond_embedding_channels;
  auto silu = [&](const Img& x) {
    B.node(kActivationOpV1, {x.id}, {x.id}, {int64_t(Activation::kSilu)});
    return x;
  };
  Img x = silu(B.conv(image, p + "conv_in", ch[0], 3, 1, 1));
  for (size_t i = 0; i + 1 < ch.size(); ++i) {
    x = silu(B.conv(x, p + "blocks." + std::to_string(2 * i), ch[i], 3, 1, 1));
    x = silu(B.conv(x, p + "blocks." + std::to_string(2 * i + 1), ch[i + 1], 3, 2, 1));
  }
  return B.conv(x, p + "conv_out", c.block_out_channels[0], 3, 1, 1);
}

Img unet(Builder& B, const UNetConfig& c, const Img& sample, uint32_t t, uint32_t step, uint32_t text, int64_t L,
         const ControlResiduals* cn) {
  UNetCtx u{&c, "unet/", kNoTensor, 0, text, L};
  u.temb_act = time_embedding(B, c, u.p, t, step, sample.b, &u.temb_dim);
  auto [skips, x] = unet_encoder(B, u, sample, kNoTensor);
  if (cn) {
    if (cn->down.size() != skips.size()) throw CompileError("the ControlNet's blocks do not match the UNet's");
    for (size_t i = 0; i < skips.size(); ++i) {
      const Img& s = skips[i];
      skips[i] = B.as_img(B.add(B.rows(s), cn->down[i], {s.rows(), s.c}), s.b, s.h, s.w, s.c);
    }
    x = B.as_img(B.add(B.rows(x), cn->mid, {x.rows(), x.c}), x.b, x.h, x.w, x.c);
  }
  const size_t nb = c.block_out_channels.size();
  for (size_t i = 0; i < nb; ++i) {
    const size_t r = nb - 1 - i;  // the matching down block
    const int64_t ch = c.block_out_channels[r];
    const std::string bp = "unet/up_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j <= c.layers_per_block; ++j) {
      const Img s = skips.back();
      skips.pop_back();
      const uint32_t cat = B.act("cat", {x.rows(), x.c + s.c});
      B.node(kConcatOp, {B.rows(x), B.rows(s)}, {cat});
      x = resnet(B, B.as_img(cat, x.b, x.h, x.w, x.c + s.c), bp + "resnets." + std::to_string(j) + ".", ch, u.temb_act,
                 u.temb_dim, c.norm_num_groups, c.norm_eps, 1.0);
      if (c.up_cross[i])
        x = transformer(B, u, x, bp + "attentions." + std::to_string(j) + ".", c.heads[r], c.transformer_layers[r]);
    }
    // diffusers resizes to the next skip's size: 2×, or one less where the down path rounded up.
    if (i + 1 < nb) x = B.upsample_conv(x, skips.back().h, skips.back().w, bp + "upsamplers.0.conv", ch);
  }
  const Img n = B.group_norm(x, "unet/conv_norm_out", c.norm_num_groups, c.norm_eps, true);
  return B.conv(n, "unet/conv_out", c.out_channels, 3, 1, 1);
}

// ---------------------------------------------------------------------------------------
// VAE decoder

Img vae_decoder(Builder& B, const VaeConfig& v, const Img& latents) {
  const std::string p = "vae/decoder.";
  const int64_t G = v.norm_num_groups;
  const double eps = 1e-6;
  Img z = B.img("unscaled", latents.b, latents.h, latents.w, latents.c);
  B.node(kAddOp, {kNoTensor, latents.id, kNoTensor}, {z.id}, {}, {1.0 / v.scaling_factor});
  if (v.use_post_quant_conv) z = B.conv(z, "vae/post_quant_conv", v.latent_channels, 1, 1, 0);
  const int64_t top = v.block_out_channels.back();
  Img x = B.conv(z, p + "conv_in", top, 3, 1, 1);
  x = resnet(B, x, p + "mid_block.resnets.0.", top, kNoTensor, 0, G, eps, 1.0);
  if (v.mid_attention) {
    const std::string a = p + "mid_block.attentions.0.";
    const Img n = B.group_norm(x, a + "group_norm", G, eps, false);
    const int64_t N = x.rows(), C = top;
    const uint32_t w = B.fused(a + "to_qkv.weight", {a + "to_q.weight", a + "to_k.weight", a + "to_v.weight"}, C, C);
    const uint32_t bias = B.fused(a + "to_qkv.bias", {a + "to_q.bias", a + "to_k.bias", a + "to_v.bias"}, C, 0);
    const uint32_t qkv = B.act("qkv", {N, 3 * C});
    B.node(kMatmulOp, {B.rows(n), w, bias, kNoTensor}, {qkv}, {0});
    const uint32_t att = B.act("attn", {N, C});
    B.node(kSdpaOp, {qkv, qkv}, {att}, {x.b, 1, C, 0, C, 2 * C, 0}, {1.0 / std::sqrt(double(C))});
    const uint32_t o = B.linear(att, N, a + "to_out.0", C, C, true);
    x = B.as_img(B.add(o, B.rows(x), {N, C}), x.b, x.h, x.w, C);
  }
  x = resnet(B, x, p + "mid_block.resnets.1.", top, kNoTensor, 0, G, eps, 1.0);
  const size_t nb = v.block_out_channels.size();
  for (size_t i = 0; i < nb; ++i) {
    const int64_t ch = v.block_out_channels[nb - 1 - i];
    const std::string bp = p + "up_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j <= v.layers_per_block; ++j)
      x = resnet(B, x, bp + "resnets." + std::to_string(j) + ".", ch, kNoTensor, 0, G, eps, 1.0);
    if (i + 1 < nb) x = B.upsample_conv(x, 2 * x.h, 2 * x.w, bp + "upsamplers.0.conv", ch);
  }
  const Img n = B.group_norm(x, p + "conv_norm_out", G, eps, true);
  return B.conv(n, p + "conv_out", v.out_channels, 3, 1, 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------

Graph build_diffusion_graph(const DiffusionModel& m, const Schedule& s, const DiffusionBuildOptions& o,
                            std::map<std::string, std::vector<int64_t>>* expected) {
  Graph g;
  Builder B(g, o.plan_dtype, expected);
  const UNetConfig& uc = m.unet;
  const int64_t f = vae_scale_factor(m.vae);
  // diffusers' check_inputs asks for multiples of 8, and the latents must be whole. The UNet takes
  // any latent size: its down path rounds odd sizes up and its up path resizes back to each skip.
  const int64_t unit = std::lcm(f, int64_t(8));
  if (o.height <= 0 || o.width <= 0 || o.height % unit != 0 || o.width % unit != 0)
    throw CompileError("--height and --width must be positive multiples of " + std::to_string(unit) +
                       (unit == 8 ? " (as diffusers asks)"
                                  : " (diffusers asks for 8; this VAE's factor is " + std::to_string(f) + ")"));
  if (o.height > 8192 || o.width > 8192) throw CompileError("--height and --width must be at most 8192");
  if (m.vae.latent_channels != uc.in_channels || uc.out_channels != uc.in_channels)
    throw CompileError("the VAE's latent_channels (" + std::to_string(m.vae.latent_channels) +
                       ") do not match the UNet's in/out channels");
  if (m.vae.out_channels != 3)
    throw CompileError("the VAE's out_channels is " + std::to_string(m.vae.out_channels) + ", not 3 (RGB)");
  if (m.controlnet && m.controlnet->cross_attention_dim != m.clip.hidden_size)
    throw CompileError("the ControlNet's cross_attention_dim (" + std::to_string(m.controlnet->cross_attention_dim) +
                       ") differs from the text encoder's hidden_size (" + std::to_string(m.clip.hidden_size) +
                       "): it was made for another base model");
  if (m.clip.hidden_size != uc.cross_attention_dim)
    throw CompileError("the text encoder's hidden_size (" + std::to_string(m.clip.hidden_size) +
                       ") differs from the UNet's cross_attention_dim (" + std::to_string(uc.cross_attention_dim) +
                       ")");
  if (o.text_len > m.clip.max_position_embeddings)
    throw CompileError("the text length exceeds the text encoder's positions");
  const int64_t h = o.height / f, w = o.width / f, lc = uc.in_channels, n = h * w * lc;
  const int64_t G = o.guidance > 1.0 ? 2 : 1, L = o.text_len, D = m.clip.hidden_size;
  const int64_t steps = int64_t(s.timesteps.size());
  const bool cn = m.controlnet.has_value();
  if (cn) {
    const UNetConfig& cc = *m.controlnet;
    if (cc.block_out_channels != uc.block_out_channels || cc.layers_per_block != uc.layers_per_block ||
        cc.down_cross != uc.down_cross || cc.in_channels != uc.in_channels)
      throw CompileError(
          "the ControlNet's blocks (block_out_channels, layers_per_block, down_block_types) do not match the UNet's");
  }

  // Persistent values (live across programs and replays).
  const uint32_t text = g.request("text_states", DType::F32, {G * L, D});
  const uint32_t x_img = g.request("latents", DType::F32, {1, h, w, lc});
  const uint32_t x = g.view(x_img, "latents.flat", {n});
  const uint32_t hist = g.request("sampler_history", DType::F32, {n});
  uint32_t cond = kNoTensor;
  if (cn) cond = g.request("control_embedding", DType::F32, {h * w, uc.block_out_channels[0]});

  // encode_text
  {
    GraphProgram P;
    P.name = "encode_text";
    B.begin(&P);
    const uint32_t tokens = g.state("tokens", {G, L});
    build_clip(B, m.clip, tokens, G, L, text);
    P.inputs = {{"tokens", tokens}};
    P.outputs = {{"text_states", text}};
    g.programs.push_back(std::move(P));
  }
  // prepare
  {
    GraphProgram P;
    P.name = "prepare";
    B.begin(&P);
    const uint32_t noise = g.state("noise", {1, h, w, lc}, DType::F32);
    B.node(kAddOp, {kNoTensor, noise, kNoTensor}, {x_img}, {}, {s.init_noise_sigma});
    P.inputs = {{"noise", noise}};
    if (cn) {
      const uint32_t ctl = g.state("control", {1, o.height, o.width, m.controlnet->conditioning_channels}, DType::F32);
      const Img e =
          control_embedding(B, *m.controlnet, Img{ctl, 1, o.height, o.width, m.controlnet->conditioning_channels});
      if (e.h != h || e.w != w)
        throw CompileError("the ControlNet's conditioning embedding gives " + std::to_string(e.h) + "×" +
                           std::to_string(e.w) + " latents, not " + std::to_string(h) + "×" + std::to_string(w));
      B.node(kAddOp, {kNoTensor, B.rows(e), kNoTensor}, {cond}, {}, {1.0});
      P.inputs.push_back({"control", ctl});
    }
    P.outputs = {{"latents", x_img}};
    g.programs.push_back(std::move(P));
  }
  const uint32_t t_table = B.constant("sampler.timesteps", {steps}, s.timesteps);
  const uint32_t coefs = B.constant("sampler.coefs", {steps, kSamplerCoefs}, s.coefs);
  auto model_call = [&](const Img& sample, uint32_t t, uint32_t step) {
    ControlResiduals r;
    if (cn) r = controlnet(B, *m.controlnet, sample, t, step, text, L, cond, o.control_scale);
    return unet(B, uc, sample, t, step, text, L, cn ? &r : nullptr);
  };
  // unet (one model call with explicit inputs)
  {
    GraphProgram P;
    P.name = "unet";
    B.begin(&P);
    const uint32_t sample = g.state("sample", {G, h, w, lc}, DType::F32);
    const uint32_t t = g.state("timestep", {1}, DType::F32);
    const Img out = model_call(Img{sample, G, h, w, lc}, t, kNoTensor);
    P.inputs = {{"sample", sample}, {"timestep", t}};
    P.outputs = {{"noise_pred", out.id}};
    g.programs.push_back(std::move(P));
  }
  // denoise (one sampler step)
  {
    GraphProgram P;
    P.name = "denoise";
    B.begin(&P);
    const uint32_t step = g.state("step", {1});
    const uint32_t x_in = B.act("model_in", {G * n});
    B.node(kSamplerInputOp, {x, coefs, step}, {x_in});
    const Img out = model_call(B.as_img(x_in, G, h, w, lc), t_table, step);
    const uint32_t out_flat = g.view(out.id, "denoise.model_out", {G * n});
    P.inputs = {{"step", step}};
    uint32_t noise = kNoTensor;
    if (s.stochastic) {
      const uint32_t seed = g.state("seed", {2});
      noise = B.act("noise", {n});
      B.node(kNormalNoiseOp, {seed, step}, {noise}, {1});
      P.inputs.push_back({"seed", seed});
    }
    B.node(kSamplerStepOp, {out_flat, coefs, step, noise}, {x, hist}, {}, {G == 2 ? o.guidance : 1.0});
    P.outputs = {{"latents", x_img}};
    P.repeat = uint32_t(steps);  // replayed whole, the loop is one program (one CUDA graph)
    P.counter = step;
    g.programs.push_back(std::move(P));
  }
  // vae_decode
  {
    GraphProgram P;
    P.name = "vae_decode";
    B.begin(&P);
    const Img image = vae_decoder(B, m.vae, Img{x_img, 1, h, w, lc});
    if (image.h != o.height || image.w != o.width) throw CompileError("internal: the VAE decodes to the wrong size");
    P.outputs = {{"image", image.id}};
    g.programs.push_back(std::move(P));
  }
  return g;
}

}  // namespace kiln

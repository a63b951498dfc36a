// CUDA diffusion kernels against their CPU twins: the norms, conv2d, the elementwise ops, sdpa,
// the timestep embedding and the samplers.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "cuda/cuda_test.h"
#include "kernels/cuda/kernels_cuda.h"
#include "runtime/context.h"
#include "runtime/cublaslt.h"

using namespace kiln;
using namespace kiln::cuda_test;
using kiln::test::random_floats;
using kiln::test::rel_l2;
using kiln::test::TempDir;

// --- Diffusion kernels (kernels/cuda/diffusion.cu). Outputs start as NaN, so an element the
// kernel never writes fails the comparison (rel_l2 is NaN).

namespace {

// rel L2 of a device result against the CPU's, with every element required finite.
double diff_of(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  CHECK(std::count_if(gpu.begin(), gpu.end(), [](float v) { return !std::isfinite(v); }) == 0);
  return rel_l2(gpu.data(), cpu.data(), cpu.size());
}

// A normal draw around `mean` (statistics must not rely on zero-mean input).
std::vector<float> shifted(size_t n, uint32_t seed, float mean, float scale = 1.0f) {
  auto v = random_floats(n, seed, scale);
  for (float& x : v) x += mean;
  return v;
}

}  // namespace

TEST_CASE("cuda: layernorm matches the CPU kernel (odd widths, every weight dtype, with and without a bias)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1000;
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t rows : {1, 7, 33})
      for (int64_t dim : {1, 77, 768, 1280}) {
        const bool bias = dim != 768;  // (Cohere's LayerNorms have none: layernorm version 2)
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(rows);
        CAPTURE(dim);
        const auto x = shifted(size_t(rows * dim), seed++, 3.0f, 2.0f);
        const auto w = as_dtype(shifted(size_t(dim), seed++, 1.0f, 0.2f), wt);
        const auto b = as_dtype(random_floats(size_t(dim), seed++, 0.2f), wt);
        std::vector<float> yc(x.size(), kNaN);
        Dev dx(x), dw(w), db(b), dy(yc);
        layernorm_cpu({x.data(), w.data(), bias ? b.data() : nullptr, wt, yc.data(), rows, dim, 1e-5f}, pool);
        layernorm_cuda({dx.as<float>(), dw.p, bias ? db.p : nullptr, wt, dy.as<float>(), rows, dim, 1e-5f}, nullptr);
        sync_ok();
        CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
      }
}

TEST_CASE("cuda: group_norm matches the CPU kernel (groups of 1 to 40 channels, SiLU on and off)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1100;
  struct Shape {
    int64_t batch, pixels, channels, groups;
    bool silu;
  };
  for (DType wt : {DType::F32, DType::BF16})
    for (const Shape& s : {Shape{2, 64, 320, 32, true}, Shape{1, 37, 96, 32, false}, Shape{2, 4096, 64, 32, true},
                           Shape{1, 13, 6, 3, false}, Shape{2, 50, 40, 1, true}, Shape{1, 9, 1280, 32, true}}) {
      CAPTURE(std::string(dtype_name(wt)));
      CAPTURE(s.batch);
      CAPTURE(s.pixels);
      CAPTURE(s.channels);
      CAPTURE(s.groups);
      const auto x = shifted(size_t(s.batch * s.pixels * s.channels), seed++, -1.5f, 3.0f);
      const auto w = as_dtype(shifted(size_t(s.channels), seed++, 1.0f, 0.3f), wt);
      const auto b = as_dtype(random_floats(size_t(s.channels), seed++, 0.3f), wt);
      std::vector<float> yc(x.size(), kNaN);
      Dev dx(x), dw(w), db(b), dy(yc);
      group_norm_cpu(
          {x.data(), w.data(), b.data(), wt, yc.data(), s.batch, s.pixels, s.channels, s.groups, s.silu, 1e-6f}, pool);
      group_norm_cuda(
          {dx.as<float>(), dw.p, db.p, wt, dy.as<float>(), s.batch, s.pixels, s.channels, s.groups, s.silu, 1e-6f},
          nullptr);
      sync_ok();
      CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
    }
}

TEST_CASE("cuda: conv2d matches the CPU kernel (3x3, 1x1, stride 2, upsample, stems, epilogue, both tile sizes)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 1200;
  struct Shape {
    int64_t batch, h, w, cin, cout, k, stride, pad;
    int up;  // 0: none, 2: 2x nearest, 1: nearest to (2h - 1, 2w - 1) (the UNet's odd skips)
    bool bias, chan_add, residual;
    float out_scale;
  };
  const Shape shapes[] = {
      {2, 9, 11, 32, 40, 3, 1, 1, 0, true, false, false, 1.0f},   // 3x3, vectorised path, small tiles
      {2, 9, 11, 32, 40, 3, 1, 1, 0, true, true, true, 0.5f},     // ResNet conv2: chan_add + residual, scaled
      {1, 10, 7, 16, 24, 3, 2, 1, 0, true, false, false, 1.0f},   // Downsample2D: stride 2, odd output
      {2, 5, 6, 16, 20, 3, 1, 1, 2, true, false, false, 1.0f},    // Upsample2D: 2x nearest, then conv
      {2, 3, 7, 16, 20, 3, 1, 1, 1, true, false, false, 1.0f},    // Upsample2D to an odd skip's size
      {2, 6, 5, 64, 24, 1, 1, 0, 0, true, false, true, 1.0f},     // 1x1 skip conv + residual
      {1, 7, 9, 3, 8, 3, 1, 1, 0, true, false, false, 1.0f},      // RGB stem: element gather path
      {1, 6, 4, 4, 12, 3, 1, 1, 2, false, false, false, 1.0f},    // gather path with upsample, no bias
      {1, 5, 4, 4, 12, 3, 1, 1, 1, false, false, false, 1.0f},    // gather path, odd resize
      {2, 64, 64, 16, 320, 3, 1, 1, 0, true, true, false, 1.0f},  // 128x64 tiles, vectorised
      {2, 64, 64, 3, 320, 3, 1, 1, 0, true, false, false, 1.0f},  // 128x64 tiles, gather
      {1, 8, 8, 320, 64, 3, 1, 1, 0, true, false, false, 1.0f},   // K = 2880
      {1, 12, 10, 48, 70, 3, 2, 0, 0, false, true, false, 2.0f},  // stride 2 without padding
  };
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (const Shape& s : shapes) {
      CAPTURE(std::string(dtype_name(wt)));
      CAPTURE(s.h);
      CAPTURE(s.w);
      CAPTURE(s.cin);
      CAPTURE(s.cout);
      CAPTURE(s.k);
      CAPTURE(s.stride);
      CAPTURE(s.up);
      const int64_t hv = s.up == 0 ? s.h : 2 * s.h - (s.up == 1), wv = s.up == 0 ? s.w : 2 * s.w - (s.up == 1);
      const int64_t ho = conv2d_out_size(hv, s.k, s.stride, s.pad);
      const int64_t wo = conv2d_out_size(wv, s.k, s.stride, s.pad);
      ThreadPool pool(2, conv2d_scratch_floats(s.k, s.k, s.cin));
      const auto x = random_floats(size_t(s.batch * s.h * s.w * s.cin), seed++);
      const auto w = as_dtype(random_floats(size_t(s.cout * s.k * s.k * s.cin), seed++, 0.05f), wt);
      const auto bias = as_dtype(random_floats(size_t(s.cout), seed++, 0.5f), wt);
      const auto chan = random_floats(size_t(s.batch * s.cout), seed++);
      const auto res = random_floats(size_t(s.batch * ho * wo * s.cout), seed++);
      std::vector<float> yc(size_t(s.batch * ho * wo * s.cout), kNaN);
      Dev dx(x), dw(w), db(bias), dc(chan), dr(res), dy(yc);
      Conv2dArgs a{x.data(),
                   w.data(),
                   wt,
                   s.bias ? bias.data() : nullptr,
                   s.chan_add ? chan.data() : nullptr,
                   s.residual ? res.data() : nullptr,
                   yc.data(),
                   s.batch,
                   s.h,
                   s.w,
                   s.cin,
                   s.cout,
                   s.k,
                   s.k,
                   s.stride,
                   s.pad,
                   hv,
                   wv,
                   s.out_scale,
                   ho,
                   wo};
      conv2d_cpu(a, pool);
      Conv2dArgs g = a;
      g.x = dx.as<float>();
      g.w = dw.p;
      g.bias = s.bias ? db.p : nullptr;
      g.chan_add = s.chan_add ? dc.as<float>() : nullptr;
      g.residual = s.residual ? dr.as<float>() : nullptr;
      g.y = dy.as<float>();
      conv2d_cuda(g, nullptr);
      sync_ok();
      // f32 sums of up to 2880 products in a different order than the CPU's 16 lanes: each
      // side's rounding error is about eps·sqrt(K/2) ≈ 2e-6 relative.
      CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
    }
}

TEST_CASE(
    "cuda: activation, geglu (exact and tanh), softcap, clamp, add, concat and image_mean match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1300;
  const XieluParams xp{0.7f, 1.1f, 0.45f, -0.2f};
  for (int64_t kind = 0; kind <= int64_t(Activation::kXielu);
       ++kind)  // (relu²: Arcee's; relu: OPT's; xIELU: Apertus's)
    for (bool in_place : {false, true}) {
      CAPTURE(kind);
      CAPTURE(in_place);
      const int64_t n = 5 * 1031;
      const auto x = random_floats(size_t(n), seed++, 3.0f);
      std::vector<float> yc(size_t(n), kNaN);
      Dev dx(x), dy(yc);
      activation_cpu({x.data(), yc.data(), n, Activation(kind), xp}, pool);
      activation_cuda({dx.as<float>(), in_place ? dx.as<float>() : dy.as<float>(), n, Activation(kind), xp}, nullptr);
      sync_ok();
      CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
    }
  for (Activation kind : {Activation::kGelu, Activation::kGeluTanh}) {
    CAPTURE(int64_t(kind));
    const int64_t rows = 7, f = 1283;
    const auto x = random_floats(size_t(rows * 2 * f), seed++, 2.0f);
    std::vector<float> yc(size_t(rows * f), kNaN);
    Dev dx(x), dy(yc);
    geglu_cpu({x.data(), yc.data(), rows, f, kind}, pool);
    geglu_cuda({dx.as<float>(), dy.as<float>(), rows, f, kind}, nullptr);
    sync_ok();
    CHECK(diff_of(dy.get<float>(), yc) < 1e-6);
  }
  for (bool in_place : {false, true}) {
    CAPTURE(in_place);
    const int64_t n = 3 * 4099;
    const auto x = random_floats(size_t(n), seed++, 40.0f);  // into tanh's flat tails too
    std::vector<float> yc(size_t(n), kNaN);
    Dev dx(x), dy(yc);
    softcap_cpu({x.data(), yc.data(), n, 30.0f}, pool);
    softcap_cuda({dx.as<float>(), in_place ? dx.as<float>() : dy.as<float>(), n, 30.0f}, nullptr);
    sync_ok();
    CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
  }
  for (bool in_place : {false, true}) {  // (clip_qkv: NaN and infinities as the CPU kernel, bit for bit)
    CAPTURE(in_place);
    const int64_t rows = 3, cols = 4099, n = rows * cols;
    auto x = random_floats(size_t(n), seed++, 12.0f);
    x[0] = kNaN, x[1] = std::numeric_limits<float>::infinity(), x[2] = -x[1], x[3] = -0.0f;
    std::vector<float> yc(size_t(n), kNaN);
    Dev dx(x), dy(yc);
    clamp_cpu({x.data(), yc.data(), rows, cols, -8.0f, 8.0f}, pool);
    clamp_cuda({dx.as<float>(), in_place ? dx.as<float>() : dy.as<float>(), rows, cols, -8.0f, 8.0f}, nullptr);
    sync_ok();
    const std::vector<float> yd = (in_place ? dx : dy).get<float>();
    CHECK(std::memcmp(yd.data(), yc.data(), yc.size() * 4) == 0);
  }
  for (DType bt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t b_rows : {1, 5, 10})
      for (int mode : {0, 1, 2, 3}) {  // out of place, in place, a absent (y = scale·b), gated (in place)
        const bool in_place = mode == 1 || mode == 3, no_a = mode == 2, gated = mode == 3;
        CAPTURE(std::string(dtype_name(bt)));
        CAPTURE(b_rows);
        CAPTURE(mode);
        const int64_t rows = 10, cols = 33;
        const auto x = random_floats(size_t(rows * cols), seed++);
        const auto b = as_dtype(random_floats(size_t(b_rows * cols), seed++), bt);
        const auto g = random_floats(size_t(rows), seed++, 6.0f);
        std::vector<float> yc(x.size(), kNaN);
        Dev dx(x), db(b), dy(yc), dg(g);
        add_cpu(
            {no_a ? nullptr : x.data(), b.data(), bt, yc.data(), rows, cols, b_rows, 0.7f, gated ? g.data() : nullptr},
            pool);
        add_cuda({no_a ? nullptr : dx.as<float>(), db.p, bt, in_place ? dx.as<float>() : dy.as<float>(), rows, cols,
                  b_rows, 0.7f, gated ? dg.as<float>() : nullptr},
                 nullptr);
        sync_ok();
        CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
      }
  {
    const int64_t rows = 9, ca = 5, cb = 7;
    const auto a = random_floats(size_t(rows * ca), seed++), b = random_floats(size_t(rows * cb), seed++);
    std::vector<float> yc(size_t(rows * (ca + cb)), kNaN);
    Dev da(a), db(b), dy(yc);
    concat_cpu({a.data(), b.data(), yc.data(), rows, ca, cb}, pool);
    concat_cuda({da.as<float>(), db.as<float>(), dy.as<float>(), rows, ca, cb}, nullptr);
    sync_ok();
    CHECK(dy.get<float>() == yc);  // a copy: bit for bit
  }
  // image_mean: sums in double on both sides, so the means agree to the last bit or so.
  for (const int64_t skip : {0, 1, 2})
    for (const bool in_place : {false, true}) {
      CAPTURE(skip);
      CAPTURE(in_place);
      const int64_t images = 2, n = 300, cols = 150;
      const auto x = random_floats(size_t(images * n * cols), seed++);
      std::vector<float> yc(x.size(), kNaN);
      Dev dx(x), dy(yc);
      image_mean_cpu({x.data(), yc.data(), images, n, cols, skip}, pool);
      image_mean_cuda({dx.as<float>(), in_place ? dx.as<float>() : dy.as<float>(), images, n, cols, skip}, nullptr);
      sync_ok();
      CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
    }
}

TEST_CASE("cuda: sdpa matches the CPU kernel (causal and not, fused column windows, odd sizes, long keys)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 1400;
  struct Shape {
    int64_t batch, lq, lk, heads, head_dim;
    bool causal, fused;  // fused: q, k, v are windows of one [q | k | v] buffer (self-attention)
    int64_t pad;         // extra columns before the windows (offsets not a multiple of 4 when odd)
  };
  const Shape shapes[] = {
      {1, 77, 77, 3, 64, true, true, 0},      // CLIP text encoder
      {2, 200, 200, 2, 40, false, true, 0},   // UNet self-attention, partial tiles
      {2, 130, 77, 2, 80, false, false, 0},   // UNet cross-attention
      {1, 70, 77, 2, 160, false, false, 4},   // head_dim 160
      {1, 65, 65, 2, 37, true, true, 1},      // odd head_dim and offsets: scalar loads
      {1, 100, 70, 1, 64, true, false, 0},    // causal with lq > lk
      {1, 64, 4096, 1, 64, false, false, 0},  // long key length
      {1, 50, 50, 1, 256, true, true, 0},     // the largest head_dim
      {2, 1, 3, 2, 8, false, false, 3},       // tiny
      {1, 90, 120, 2, 128, false, false, 0},  // head_dim 128 (the 8-column kernel), cross-attention
      {1, 120, 120, 2, 128, true, true, 0},   // the same, fused self-attention
      {1, 20, 0, 1, 64, false, false, 0},     // no keys: zeros, as on the CPU
  };
  for (const Shape& s : shapes) {
    CAPTURE(s.batch);
    CAPTURE(s.lq);
    CAPTURE(s.lk);
    CAPTURE(s.heads);
    CAPTURE(s.head_dim);
    CAPTURE(s.causal);
    const int64_t hw = s.heads * s.head_dim;
    SdpaArgs a{};
    a.batch = s.batch, a.lq = s.lq, a.lk = s.lk, a.heads = s.heads, a.head_dim = s.head_dim, a.causal = s.causal;
    a.scale = 1.0f / std::sqrt(float(s.head_dim));
    std::vector<float> q, kv;
    if (s.fused) {
      REQUIRE(s.lq == s.lk);
      a.wq = a.wkv = s.pad + 3 * hw + 2;
      a.q_off = s.pad, a.k_off = s.pad + hw, a.v_off = s.pad + 2 * hw;
      q = random_floats(size_t(s.batch * s.lq * a.wq), seed++);
    } else {
      a.wq = s.pad + hw + 1;
      a.wkv = s.pad + 2 * hw;
      a.q_off = s.pad, a.k_off = s.pad + hw, a.v_off = s.pad;  // [v | k] order: any windows work
      q = random_floats(size_t(s.batch * s.lq * a.wq), seed++);
      kv = random_floats(size_t(s.batch * s.lk * a.wkv), seed++);
    }
    ThreadPool pool(2, uint64_t(s.lk + s.head_dim));
    std::vector<float> oc(size_t(s.batch * s.lq * hw), kNaN);
    Dev dq(q), dkv(s.fused ? q : kv), dout(oc);
    SdpaArgs c = a;
    c.q_src = q.data();
    c.kv_src = s.fused ? q.data() : kv.data();
    c.out = oc.data();
    sdpa_cpu(c, pool);
    SdpaArgs g = a;
    g.q_src = dq.as<float>();
    g.kv_src = s.fused ? dq.as<float>() : dkv.as<float>();
    g.out = dout.as<float>();
    sdpa_cuda(g, nullptr);
    sync_ok();
    // Both sides sum up to lk weighted values in f32 in different orders (the CPU in key
    // order after an exact softmax, the GPU per 64-key tile with online rescaling); even at
    // lk = 4096 that stays near 2e-6.
    CHECK(diff_of(dout.get<float>(), oc) < 1e-5);
  }
}

TEST_CASE("cuda: timestep_embedding matches the CPU kernel (flip, shift, odd dim, clamped step)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  std::vector<float> t(50);
  for (size_t i = 0; i < t.size(); ++i) t[i] = 999.0f - 20.37f * float(i);
  for (int32_t step : {17, 0, 49, -5, 100, -1})  // -1: no step operand (t[0])
    for (int64_t dim : {320, 33})
      for (bool flip : {true, false}) {
        CAPTURE(step);
        CAPTURE(dim);
        CAPTURE(flip);
        const float shift = flip ? 0.0f : 1.0f;
        const int64_t rows = 2;
        std::vector<int32_t> st = {step};
        std::vector<float> ec(size_t(rows * dim), kNaN);
        Dev dt(t), ds(st), de(ec);
        const int32_t* sc = step == -1 ? nullptr : st.data();
        timestep_embedding_cpu({t.data(), int64_t(t.size()), sc, ec.data(), rows, dim, flip, shift, 10000.0f}, pool);
        timestep_embedding_cuda({dt.as<float>(), int64_t(t.size()), step == -1 ? nullptr : ds.as<int32_t>(),
                                 de.as<float>(), rows, dim, flip, shift, 10000.0f},
                                nullptr);
        sync_ok();
        // exp, sin and cos round once from double on the GPU; glibc's f32 versions are
        // correctly rounded almost always, so nearly every element is bit-identical.
        CHECK(diff_of(de.get<float>(), ec) < 1e-6);
      }
}

TEST_CASE("cuda: sampler_input and sampler_step match the CPU kernels (g = 1 and 2, noise, h, clamped step)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1500;
  const int64_t steps = 10, n = 4 * 64 * 64 + 3;
  auto coefs = random_floats(size_t(steps * kSamplerCoefs), seed++);
  coefs[size_t(4 * kSamplerCoefs + kAh)] = 0.0f;  // step 4: a DPM++ first step, h unused
  Dev dcoefs(coefs);
  for (int32_t step : {3, 4, 12, -2})
    for (int64_t g : {1, 2}) {
      CAPTURE(step);
      CAPTURE(g);
      std::vector<int32_t> st = {step};
      Dev ds(st);
      {
        const auto x = random_floats(size_t(n), seed++);
        std::vector<float> xc(size_t(g * n), kNaN);
        Dev dx(x), dxin(xc);
        sampler_input_cpu({x.data(), coefs.data(), steps, st.data(), xc.data(), n, g}, pool);
        sampler_input_cuda({dx.as<float>(), dcoefs.as<float>(), steps, ds.as<int32_t>(), dxin.as<float>(), n, g},
                           nullptr);
        sync_ok();
        CHECK(diff_of(dxin.get<float>(), xc) == 0.0);
      }
      for (int variant = 0; variant < 3; ++variant) {  // 0: noise + h, 1: h only, 2: neither
        CAPTURE(variant);
        const bool has_noise = variant == 0, has_h = variant != 2;
        const auto out = random_floats(size_t(g * n), seed++);
        const auto noise = random_floats(size_t(n), seed++);
        auto xc = random_floats(size_t(n), seed++);
        // h is poisoned where the step must not read it (a_h == 0): NaN would spread into x.
        auto hc = step == 4 ? std::vector<float>(size_t(n), kNaN) : random_floats(size_t(n), seed++);
        Dev dout(out), dnoise(noise), dx(xc), dh(hc);
        sampler_step_cpu({out.data(), coefs.data(), steps, st.data(), has_noise ? noise.data() : nullptr, xc.data(),
                          has_h ? hc.data() : nullptr, n, g, 7.5f},
                         pool);
        sampler_step_cuda(
            {dout.as<float>(), dcoefs.as<float>(), steps, ds.as<int32_t>(), has_noise ? dnoise.as<float>() : nullptr,
             dx.as<float>(), has_h ? dh.as<float>() : nullptr, n, g, 7.5f},
            nullptr);
        sync_ok();
        // Both sides round every product and sum on its own (no FMA), so x86 builds agree bit
        // for bit; the bound leaves room for a CPU build that contracts.
        CHECK(diff_of(dx.get<float>(), xc) < 1e-6);
        if (has_h) CHECK(diff_of(dh.get<float>(), hc) < 1e-6);
      }
    }
}

TEST_CASE("cuda: normal_noise equals the CPU kernel bit for bit and is standard normal") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  const int64_t n = 100003;
  std::vector<int32_t> seed = {0x12345678, -7};
  Dev dseed(seed);
  std::vector<std::vector<float>> draws;
  for (int32_t step : {5, 6, -1})  // -1: no step operand
    for (int64_t stream : {0, 3}) {
      CAPTURE(step);
      CAPTURE(stream);
      std::vector<int32_t> st = {step};
      std::vector<float> zc(size_t(n), kNaN);
      Dev ds(st), dz(zc);
      normal_noise_cpu({seed.data(), step == -1 ? nullptr : st.data(), zc.data(), n, stream}, pool);
      normal_noise_cuda({dseed.as<int32_t>(), step == -1 ? nullptr : ds.as<int32_t>(), dz.as<float>(), n, stream},
                        nullptr);
      sync_ok();
      const auto zg = dz.get<float>();
      CHECK(std::memcmp(zg.data(), zc.data(), zc.size() * sizeof(float)) == 0);
      double s = 0, ss = 0;
      for (float v : zg) {
        s += v;
        ss += double(v) * v;
      }
      REQUIRE(std::isfinite(s));
      const double mean = s / double(n), var = ss / double(n) - mean * mean;
      // Standard errors: 1/sqrt(n) ≈ 0.0032 for the mean, sqrt(2/n) ≈ 0.0045 for the variance.
      CHECK(std::fabs(mean) < 0.02);
      CHECK(std::fabs(var - 1.0) < 0.03);
      draws.push_back(zg);
    }
  // The Philox counter is stream + step: here 5, 8, 6, 9, 0 and 3, so every draw differs.
  for (size_t i = 0; i < draws.size(); ++i)
    for (size_t j = i + 1; j < draws.size(); ++j) CHECK(draws[i] != draws[j]);
}

// CUDA LLM kernels against their CPU twins: sampling, embedding, RMSNorm, SwiGLU, RoPE (fused
// with the KV write too), the KV write and attention (decode split-K, tiled prefill), and the
// DeepSeek kernels (head_matmul, MLA, MoE).
#include <cmath>
#include <cstring>
#include <functional>
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

TEST_CASE(
    "cuda: greedy sample matches the CPU kernel (vocab 128256, ties, NaN, -inf rows, idle rows, clamped n_valid)") {
  if (skip_without_gpu()) return;
  const int64_t batch = 5, chunk = 3, vocab = 128256;
  auto logits = random_floats(size_t(batch * chunk * vocab), 77, 3.0f);
  const float nan = std::nanf("");
  auto row = [&](int64_t b, int64_t t) { return logits.data() + (b * chunk + t) * vocab; };
  // row 0: a tie at the maximum far apart (the lower id wins); row 1: NaN first and a maximum at
  // the end; row 2: all NaN (0); row 3: -inf after a NaN (the first -inf, id 1); row 4: idle.
  row(0, 2)[70000] = 50.0f, row(0, 2)[9] = 50.0f;
  row(1, 0)[0] = nan, row(1, 0)[vocab - 1] = 60.0f;
  std::fill(row(2, 1), row(2, 1) + vocab, nan);
  std::fill(row(3, 2), row(3, 2) + vocab, -INFINITY);
  row(3, 2)[0] = nan;
  const std::vector<int32_t> valid = {3, 1, 2, 7, 0};
  std::vector<int32_t> want(batch, 99);
  ThreadPool pool(2, uint64_t(2 * vocab));
  sample_cpu({logits.data(), valid.data(), nullptr, want.data(), batch, chunk, vocab}, pool);
  CHECK(want == std::vector<int32_t>{9, int32_t(vocab - 1), 0, 1, -1});
  Dev dl(logits), dv(valid), dn(std::vector<int32_t>(batch, 99));
  sample_cuda({dl.as<float>(), dv.as<int32_t>(), nullptr, dn.as<int32_t>(), batch, chunk, vocab}, nullptr);
  sync_ok();
  CHECK(dn.get<int32_t>() == want);
}

// Temperature sampling on the device against the CPU kernel (which is the host's sample_token):
// top-k from 1 to 1024 (ties at the boundary, a repeated maximum), top-p on and off, many
// (seed, step) draws, a small vocabulary with top_k 0 (every token a candidate), greedy rows
// mixed in, and top_k above the device's limit (-1: the host samples).
TEST_CASE("cuda: sampling with temperature, top-k and top-p picks the CPU kernel's tokens") {
  if (skip_without_gpu()) return;
  for (const int64_t vocab : {int64_t(128256), int64_t(300)}) {
    CAPTURE(vocab);
    const int64_t batch = 64;
    auto logits = random_floats(size_t(batch * vocab), 91, 2.5f);
    for (int64_t b = 0; b < batch; ++b) {
      float* r = logits.data() + b * vocab;
      if (b % 4 == 0) {  // a repeated maximum: 40 ties above every other logit
        for (int64_t j = 0; j < 40; ++j) r[(j * 97 + b) % vocab] = 30.0f;
      } else if (b % 4 == 1) {  // 60 ties around rank 1000 (or the middle of a small row), straddling top_k
        std::vector<float> sorted(r, r + vocab);
        const size_t at = size_t(std::min<int64_t>(1000, vocab / 2));
        std::nth_element(sorted.begin(), sorted.begin() + long(at), sorted.end(), std::greater<float>());
        for (int64_t j = 0; j < 60; ++j) r[(j * 131 + b) % vocab] = sorted[at];
      } else if (b % 4 == 2 && b % 8 == 2) {  // every logit equal, as -0 and +0: all keys tie
        for (int64_t j = 0; j < vocab; ++j) r[j] = (j % 2) ? -0.0f : 0.0f;
      }
    }
    std::vector<int32_t> valid(size_t(batch), 1);
    std::vector<SampleParams> params(static_cast<size_t>(batch));
    const int32_t ks[] = {1, 2, 7, 40, 41, 100, 1000, 1024, 0};
    for (int64_t b = 0; b < batch; ++b)
      params[size_t(b)] = {b % 9 == 8 && vocab > 1024 ? 0.7f : (b % 11 == 0 ? 0.0f : 0.3f + 0.1f * float(b % 13)),
                           ks[b % 9],
                           (b % 3 == 0) ? 1.0f : 0.5f + 0.04f * float(b % 12),
                           0,
                           uint64_t(1234 + b),
                           uint64_t(b * 7)};
    ThreadPool pool(2, uint64_t(2 * vocab));
    std::vector<int32_t> want(size_t(batch), 99);
    sample_cpu({logits.data(), valid.data(), params.data(), want.data(), batch, 1, vocab}, pool);
    std::vector<int32_t> pw(params.size() * 8);
    std::memcpy(pw.data(), params.data(), params.size() * sizeof(SampleParams));
    Dev dl(logits), dv(valid), dp(pw), dn(std::vector<int32_t>(size_t(batch), 99));
    sample_cuda({dl.as<float>(), dv.as<int32_t>(), dp.as<SampleParams>(), dn.as<int32_t>(), batch, 1, vocab}, nullptr);
    sync_ok();
    const auto got = dn.get<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {
      CAPTURE(b);
      const SampleParams& p = params[size_t(b)];
      const int64_t k = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
      if (p.temperature > 0.0f && k > kSampleMaxTopK) CHECK(got[size_t(b)] == -1);
      else CHECK(got[size_t(b)] == want[size_t(b)]);
    }
  }
}

TEST_CASE("cuda: last_rows matches the CPU kernel (clamped, idle and full rows)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  const int64_t batch = 5, chunk = 4, dim = 300;
  const auto x = random_floats(size_t(batch * chunk * dim), 32);
  const std::vector<int32_t> n_valid = {1, 4, 0, 9, -2};
  std::vector<float> yc(size_t(batch * dim), kNaN);
  Dev dx(x), dn(n_valid), dy(yc);
  last_rows_cpu({x.data(), n_valid.data(), yc.data(), batch, chunk, dim}, pool);
  last_rows_cuda({dx.as<float>(), dn.as<int32_t>(), dy.as<float>(), batch, chunk, dim}, nullptr);
  sync_ok();
  CHECK(dy.get<float>() == yc);  // copies: bit for bit
}

TEST_CASE("cuda: embedding, rmsnorm, swiglu and rope match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  for (float scale : {1.0f, 33.941125f}) {  // 1, and Gemma's √1152
    const int64_t vocab = 1000, dim = 96;
    const auto table = as_dtype(random_floats(size_t(vocab * dim), 1), DType::BF16);
    std::vector<int32_t> tok = {5, 999, 0, -3, 1000, 42};
    std::vector<float> yc(tok.size() * size_t(dim), kNaN), yg = yc;
    Dev dt(table), dtok(tok), dy(yg);
    embedding_cpu({tok.data(), table.data(), DType::BF16, yc.data(), int64_t(tok.size()), vocab, dim, scale}, pool);
    embedding_cuda({dtok.as<int32_t>(), dt.p, DType::BF16, dy.as<float>(), int64_t(tok.size()), vocab, dim, scale},
                   nullptr);
    sync_ok();
    CHECK(dy.get<float>() == yc);  // one f32 multiply: bit for bit
  }
  {  // GPT-2's learned positions (version 3): batch 2 of chunk 3, the second row's last position past the table
    const int64_t vocab = 50, dim = 40, positions = 9;
    const auto table = as_dtype(random_floats(size_t(vocab * dim), 4), DType::F16);
    const auto pos = random_floats(size_t(positions * dim), 5);
    const std::vector<int32_t> tok = {3, 7, 49, 0, 12, 8}, start = {0, 7};
    std::vector<float> yc(tok.size() * size_t(dim), kNaN), yg = yc;
    Dev dt(table), dp(pos), dtok(tok), ds(start), dy(yg);
    EmbeddingArgs c{tok.data(), table.data(), DType::F16, yc.data(), int64_t(tok.size()), vocab, dim, 1.7f};
    c.start_pos = start.data();
    c.pos_table = pos.data();
    c.batch = 2;
    c.positions = positions;
    EmbeddingArgs g = c;
    g.tokens = dtok.as<int32_t>();
    g.table = dt.p;
    g.y = dy.as<float>();
    g.start_pos = ds.as<int32_t>();
    g.pos_table = dp.p;
    embedding_cpu(c, pool);
    embedding_cuda(g, nullptr);
    sync_ok();
    CHECK(dy.get<float>() == yc);  // a product (scale 1.7: no family has both yet), then a sum: bit for bit
  }
  {
    const int64_t rows = 7, dim = 2048;
    const auto x = random_floats(size_t(rows * dim), 2, 3.0f);
    const auto w = as_dtype(random_floats(size_t(dim), 3), DType::F16);
    std::vector<float> yc(x.size(), kNaN);
    Dev dx(x), dw(w), dy(yc);
    rmsnorm_cpu({x.data(), w.data(), DType::F16, yc.data(), rows, dim, 1e-5f}, pool);
    rmsnorm_cuda({dx.as<float>(), dw.p, DType::F16, dy.as<float>(), rows, dim, 1e-5f}, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-6);
  }
  {
    const int64_t rows = 9, ffn = 1000;
    const auto gu = random_floats(size_t(rows * 2 * ffn), 4, 2.0f);
    std::vector<float> hc(size_t(rows * ffn), kNaN);
    Dev dgu(gu), dh(hc);
    swiglu_cpu({gu.data(), hc.data(), rows, ffn}, pool);
    swiglu_cuda({dgu.as<float>(), dh.as<float>(), rows, ffn}, nullptr);
    sync_ok();
    const auto hg = dh.get<float>();
    CHECK(rel_l2(hg.data(), hc.data(), hc.size()) < 1e-6);
  }
  for (int64_t rot : {128, 96}) {  // the whole head; Phi-4-mini's partial rotary (0.75)
    CAPTURE(rot);
    const int64_t batch = 2, chunk = 5, hd = 128, nrot = 12, width = 16 * hd;
    auto qc = random_floats(size_t(batch * chunk * width), 5);
    std::vector<float> inv(size_t(rot / 2));
    for (int64_t i = 0; i < rot / 2; ++i) inv[size_t(i)] = std::pow(500000.0f, -2.0f * float(i) / float(rot));
    std::vector<int32_t> start = {0, 3000};
    Dev dq(qc), dinv(inv), ds(start);
    rope_cpu({qc.data(), inv.data(), start.data(), batch, chunk, width, nrot, hd, 1.0f, rot}, pool);
    rope_cuda({dq.as<float>(), dinv.as<float>(), ds.as<int32_t>(), batch, chunk, width, nrot, hd, 1.0f, rot}, nullptr);
    sync_ok();
    const auto qg = dq.get<float>();
    CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-5);
  }
}

TEST_CASE(
    "cuda: head_rmsnorm (Qwen3's q_norm and k_norm, Cohere's per-head LayerNorms) matches the CPU kernel, "
    "v heads untouched") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  for (const DType wt : {DType::F32, DType::BF16}) {
    for (const int64_t hd : {128, 24, 40})  // a full warp's multiple, less than a warp, a warp and a bit
      for (const int64_t mode :
           {int64_t(0), kHeadNormCenter, kHeadNormPerHeadWeights, kHeadNormCenter | kHeadNormPerHeadWeights}) {
        CAPTURE(hd);
        CAPTURE(mode);
        const bool per_head = mode & kHeadNormPerHeadWeights;
        const int64_t rows = 11, nq = 8, nk = 2, width = (nq + 2 * nk) * hd;
        auto qc = random_floats(size_t(rows * width), 60 + uint32_t(hd), 2.0f);
        for (size_t i = 0; i < qc.size(); i += 3) qc[i] += 1.5f;  // (a mean away from zero)
        const auto wq = as_dtype(random_floats(size_t(per_head ? nq * hd : hd), 7), wt);
        const auto wk = as_dtype(random_floats(size_t(per_head ? nk * hd : hd), 8), wt);
        const auto before = qc;
        Dev dq(qc), dwq(wq), dwk(wk);
        HeadRmsNormArgs ac{qc.data(), wq.data(), wk.data(), wt, rows, width, nq, nk, hd, 1e-6f};
        HeadRmsNormArgs ag{dq.as<float>(), dwq.p, dwk.p, wt, rows, width, nq, nk, hd, 1e-6f};
        ac.mode = ag.mode = mode;
        head_rmsnorm_cpu(ac, pool);
        head_rmsnorm_cuda(ag, nullptr);
        sync_ok();
        const auto qg = dq.get<float>();
        CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-6);
        for (int64_t r = 0; r < rows; ++r)  // the v heads keep their values, bit for bit
          for (int64_t i = (nq + nk) * hd; i < width; ++i)
            CHECK(qg[size_t(r * width + i)] == before[size_t(r * width + i)]);
      }
    // OLMo 2: q and k normalized whole (one q head of 8·64 values, one k head of 2·64)
    const int64_t rows = 7, qw = 8 * 64, kw = 2 * 64, width = qw + 2 * kw;
    auto qc = random_floats(size_t(rows * width), 77, 2.0f);
    const auto wq = as_dtype(random_floats(size_t(qw), 78), wt), wk = as_dtype(random_floats(size_t(kw), 79), wt);
    Dev dq(qc), dwq(wq), dwk(wk);
    head_rmsnorm_cpu({qc.data(), wq.data(), wk.data(), wt, rows, width, 1, 1, qw, 1e-6f, kw}, pool);
    head_rmsnorm_cuda({dq.as<float>(), dwq.p, dwk.p, wt, rows, width, 1, 1, qw, 1e-6f, kw}, nullptr);
    sync_ok();
    const auto qg = dq.get<float>();
    CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-6);
    // Per-head LayerNorms whose k heads are wider than the q heads (3 of 24, 2 of 40), each its own weights.
    {
      const int64_t hq = 24, hk = 40, w2 = 3 * hq + 2 * hk + 16;
      auto pc = random_floats(size_t(rows * w2), 80, 2.0f);
      for (size_t i = 0; i < pc.size(); i += 2) pc[i] -= 1.0f;
      const auto pq = as_dtype(random_floats(size_t(3 * hq), 81), wt),
                 pk = as_dtype(random_floats(size_t(2 * hk), 82), wt);
      Dev dp(pc), dpq(pq), dpk(pk);
      HeadRmsNormArgs ac{pc.data(), pq.data(), pk.data(), wt, rows, w2, 3, 2, hq, 1e-6f, hk};
      HeadRmsNormArgs ag{dp.as<float>(), dpq.p, dpk.p, wt, rows, w2, 3, 2, hq, 1e-6f, hk};
      ac.mode = ag.mode = kHeadNormCenter | kHeadNormPerHeadWeights;
      head_rmsnorm_cpu(ac, pool);
      head_rmsnorm_cuda(ag, nullptr);
      sync_ok();
      const auto pg = dp.get<float>();
      CHECK(rel_l2(pg.data(), pc.data(), pc.size()) < 1e-6);
    }
  }
}

// RoPE + KV write fused (the pair the backend binds as one launch) against the CPU's rope then
// kv_write: the rotated qkv buffer and both caches, with padding rows, a row reaching max_seq and
// every cache dtype.
TEST_CASE("cuda: the fused RoPE + KV write matches the CPU's rope then kv_write") {
  if (skip_without_gpu()) return;
  for (DType ct : {DType::F32, DType::BF16, DType::F16}) {
    CAPTURE(std::string(dtype_name(ct)));
    const int64_t batch = 3, chunk = 5, S = 64, H = 8, KVH = 2, hd = 64, width = (H + 2 * KVH) * hd;
    ThreadPool pool(2);
    std::vector<int32_t> start = {0, 40, 61}, valid = {5, 2, 5};  // row 2 reaches max_seq after 3 tokens
    std::vector<float> inv(size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) inv[size_t(i)] = std::pow(500000.0f, -2.0f * float(i) / float(hd));
    auto qc = random_floats(size_t(batch * chunk * width), 33);
    auto kc = as_dtype(random_floats(size_t(batch * S * KVH * hd), 34), ct), vc = kc;
    Dev dq(qc), dinv(inv), ds(start), dn(valid), dk(kc), dv(vc);
    rope_cpu({qc.data(), inv.data(), start.data(), batch, chunk, width, H + KVH, hd, 1.0f}, pool);
    kv_write_cpu({qc.data(), start.data(), valid.data(), kc.data(), vc.data(), ct, batch, chunk, S, H, KVH, hd}, pool);
    const RopeArgs r{dq.as<float>(), dinv.as<float>(), ds.as<int32_t>(), batch, chunk, width, H + KVH, hd, 1.0f};
    const KvWriteArgs w{
        dq.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dk.p, dv.p, ct, batch, chunk, S, H, KVH, hd};
    REQUIRE(rope_kv_write_cuda_supported(r, w));
    rope_kv_write_cuda(r, w, nullptr);
    sync_ok();
    const auto qg = dq.get<float>();
    CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-5);
    for (const auto& [dev, host] : {std::make_pair(&dk, &kc), std::make_pair(&dv, &vc)}) {
      const auto got = dev->get<uint8_t>();
      std::vector<float> g(host->size() / dtype_size(ct)), c(g.size());
      convert_to_f32(got.data(), ct, g.data(), g.size());
      convert_to_f32(host->data(), ct, c.data(), c.size());
      // GPU and CPU sin/cos differ in the last bits, which can flip a 16-bit rounding of a rotated
      // k now and then (2^-8 relative for bf16); a wrong position would be off by order 1.
      CHECK(rel_l2(g.data(), c.data(), c.size()) < (ct == DType::F32 ? 1e-5 : ct == DType::F16 ? 1e-4 : 5e-4));
    }
  }
}

TEST_CASE("cuda: kv_write and attention match the CPU kernels (GQA, long context, padding rows, every cache dtype)") {
  if (skip_without_gpu()) return;
  for (DType ct : {DType::F32, DType::BF16, DType::F16})
    for (int64_t hd : {64, 128}) {
      CAPTURE(std::string(dtype_name(ct)));
      CAPTURE(hd);
      const int64_t batch = 2, chunk = 4, S = 1500, H = 8, KVH = 2, width = (H + 2 * KVH) * hd;
      ThreadPool pool(2, attention_scratch_floats(S, hd));
      std::vector<int32_t> start = {1200, 0}, valid = {3, 4};
      const auto cache0 = as_dtype(random_floats(size_t(batch * S * KVH * hd), 7), ct);
      auto kc = cache0, vc = as_dtype(random_floats(size_t(batch * S * KVH * hd), 8), ct);
      const auto qkv = random_floats(size_t(batch * chunk * width), 9);
      Dev dk(kc), dv(vc), dqkv(qkv), ds(start), dn(valid);
      kv_write_cpu({qkv.data(), start.data(), valid.data(), kc.data(), vc.data(), ct, batch, chunk, S, H, KVH, hd},
                   pool);
      kv_write_cuda({dqkv.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dk.p, dv.p, ct, batch, chunk, S, H, KVH, hd},
                    nullptr);
      sync_ok();
      CHECK(dk.get<uint8_t>() == kc);
      CHECK(dv.get<uint8_t>() == vc);
      std::vector<float> oc(size_t(batch * chunk * H * hd), kNaN);
      Dev dout(oc);
      const float scale = 1.0f / std::sqrt(float(hd));
      attention_cpu({qkv.data(), kc.data(), vc.data(), ct, start.data(), valid.data(), oc.data(), batch, chunk, S, H,
                     KVH, hd, scale},
                    pool);
      attention_cuda({dqkv.as<float>(), dk.p, dv.p, ct, ds.as<int32_t>(), dn.as<int32_t>(), dout.as<float>(), batch,
                      chunk, S, H, KVH, hd, scale},
                     nullptr);
      sync_ok();
      const auto og = dout.get<float>();
      CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
    }
}

namespace {

// One attention case over a random cache: inputs, the CPU kernel's output, and the GPU output of
// `run` (given device arguments with a NaN-poisoned output), checked finite and within 1e-5.
struct AttentionCase {
  int64_t batch, chunk, heads, kv_heads, hd, max_seq;
  std::vector<int32_t> start, valid;
  int64_t window = 0;  // a sliding window (0: none)
  float softcap = 0;   // Gemma 2's score cap (0: none)
  bool sinks = false;  // GPT-OSS's sink logit per head (drawn around the scores' scale, one above them)
  bool alibi = false;  // ALiBi slopes (2^(−8(h+1)/heads): MPT's for a power-of-two head count)
};

template <typename Run>
void check_attention_case(const AttentionCase& sh, DType ct, uint32_t& seed, const Run& run) {
  CAPTURE(std::string(dtype_name(ct)));
  CAPTURE(sh.chunk);
  CAPTURE(sh.heads);
  CAPTURE(sh.kv_heads);
  CAPTURE(sh.hd);
  CAPTURE(sh.max_seq);
  CAPTURE(sh.window);
  CAPTURE(sh.softcap);
  CAPTURE(sh.sinks);
  CAPTURE(sh.alibi);
  const int64_t rows = sh.batch * sh.chunk, width = (sh.heads + 2 * sh.kv_heads) * sh.hd;
  std::vector<float> slopes(size_t(sh.heads));
  for (int64_t h = 0; h < sh.heads; ++h) slopes[size_t(h)] = std::pow(2.0f, -8.0f * float(h + 1) / float(sh.heads));
  Dev dslopes(slopes);
  std::vector<float> sinks = random_floats(size_t(sh.heads), seed++, 3.0f);
  sinks[0] = 5.0f;  // (above every score, yet its head's output stays large enough to check)
  Dev dsinks(sinks);
  const auto kc = as_dtype(random_floats(size_t(sh.batch * sh.max_seq * sh.kv_heads * sh.hd), seed++), ct);
  const auto vc = as_dtype(random_floats(size_t(sh.batch * sh.max_seq * sh.kv_heads * sh.hd), seed++), ct);
  const auto qkv = random_floats(size_t(rows * width), seed++, 2.0f);
  std::vector<float> oc(size_t(rows * sh.heads * sh.hd), kNaN);
  ThreadPool pool(2, attention_scratch_floats(sh.max_seq, sh.hd));
  const float scale = 1.0f / std::sqrt(float(sh.hd));
  attention_cpu({qkv.data(), kc.data(), vc.data(), ct, sh.start.data(), sh.valid.data(), oc.data(), sh.batch, sh.chunk,
                 sh.max_seq, sh.heads, sh.kv_heads, sh.hd, scale, sh.window, sh.softcap,
                 sh.sinks ? sinks.data() : nullptr, sh.alibi ? slopes.data() : nullptr},
                pool);
  Dev dk(kc), dv(vc), dqkv(qkv), ds(sh.start), dn(sh.valid), dout(std::vector<float>(oc.size(), kNaN));
  run(AttentionArgs{dqkv.as<float>(), dk.p, dv.p, ct, ds.as<int32_t>(), dn.as<int32_t>(), dout.as<float>(), sh.batch,
                    sh.chunk, sh.max_seq, sh.heads, sh.kv_heads, sh.hd, scale, sh.window, sh.softcap,
                    sh.sinks ? dsinks.as<float>() : nullptr, sh.alibi ? dslopes.as<float>() : nullptr});
  sync_ok();
  const auto og = dout.get<float>();
  CHECK(std::count_if(og.begin(), og.end(), [](float v) { return !std::isfinite(v); }) == 0);
  CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
}

}  // namespace

// Tiled (flash) prefill attention over the cache against the CPU kernel: chunks of 16 to 130 rows
// (several 64-row query tiles, a partial last one), prompts continuing at a later position, GQA
// and MHA, head_dim 64 to 256, partial chunks (padding rows get zeros), an idle batch row, and
// rows whose position reaches max_seq (zeros, as on the CPU).
TEST_CASE(
    "cuda: tiled prefill attention matches the CPU kernel (query tiles, continued prompts, GQA, padding rows, sinks, "
    "ALiBi)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 5000;
  const AttentionCase shapes[] = {
      {1, 130, 8, 2, 64, 512, {0}, {130}},              // three query tiles from position 0
      {2, 64, 32, 8, 128, 1024, {300, 0}, {64, 50}},    // a continued prompt; a partial chunk
      {3, 16, 4, 4, 96, 200, {190, 7, 0}, {16, 9, 0}},  // MHA, odd head count per tile; rows past max_seq; idle row
      {1, 70, 2, 1, 256, 300, {100}, {70}},             // the widest head
      {1, 512, 32, 8, 128, 2048, {0}, {512}},           // an 8B-shaped 512-token prefill chunk
      // sliding windows: shorter than one key tile, spanning tiles, on a continued prompt
      {1, 130, 8, 2, 64, 512, {0}, {130}, 7},
      {2, 64, 8, 4, 128, 1024, {300, 0}, {64, 50}, 100},
      {1, 70, 4, 1, 256, 300, {100}, {70}, 64},
      // Gemma 2's soft-capped scores, with and without a window
      {1, 130, 8, 2, 64, 512, {0}, {130}, 0, 1.5f},
      {2, 64, 8, 4, 128, 1024, {300, 0}, {64, 50}, 100, 0.7f},
      // GPT-OSS's sinks, with and without a window
      {1, 130, 8, 2, 64, 512, {0}, {130}, 0, 0, true},
      {2, 64, 8, 4, 64, 1024, {300, 0}, {64, 50}, 100, 0, true},
      // BLOOM's ALiBi (MHA), from position 0 and on a continued prompt
      {1, 130, 8, 8, 64, 512, {0}, {130}, 0, 0, false, true},
      {2, 64, 16, 16, 128, 1024, {300, 0}, {64, 50}, 0, 0, false, true},
  };
  for (DType ct : {DType::F32, DType::BF16})
    for (const AttentionCase& sh : shapes)
      check_attention_case(sh, ct, seed, [](const AttentionArgs& g) { attention_cuda(g, nullptr); });
}

// The one-pass kernel (a few rows, no split scratch) with sliding windows: shorter than the
// context, of one position, and longer than it.
TEST_CASE("cuda: one-pass attention with sliding windows, soft caps, sinks and ALiBi matches the CPU kernel") {
  if (skip_without_gpu()) return;
  uint32_t seed = 6000;
  const AttentionCase shapes[] = {
      {2, 4, 8, 2, 64, 300, {200, 0}, {4, 3}, 17},
      {1, 3, 4, 4, 128, 64, {10}, {3}, 1},
      {1, 2, 6, 2, 96, 128, {5}, {2}, 128},
      {2, 4, 8, 2, 64, 300, {200, 0}, {4, 3}, 17, 1.5f},     // soft-capped scores
      {2, 4, 8, 2, 64, 300, {200, 0}, {4, 3}, 17, 0, true},  // sinks
      {1, 3, 4, 4, 128, 64, {10}, {3}, 0, 0, true},
      {2, 4, 6, 6, 64, 300, {200, 0}, {4, 3}, 0, 0, false, true},  // ALiBi
  };
  for (DType ct : {DType::F32, DType::BF16})
    for (const AttentionCase& sh : shapes)
      check_attention_case(sh, ct, seed, [](const AttentionArgs& g) { attention_cuda(g, nullptr); });
}

// Split-K decode attention against the CPU kernel: group sizes 1 to 8 (3 runs in the 4-wide
// variant), head_dim 64 to 256, a context shorter than the split count, the last cache position,
// idle rows (zeros), and positions at or past max_seq (zeros, as on the CPU).
TEST_CASE(
    "cuda: split-K decode attention matches the CPU kernel (GQA groups, head dims, idle rows, short and long context)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 4000;
  const AttentionCase shapes[] = {
      {1, 1, 32, 8, 64, 2048, {1023}, {1}},            // Llama-3.2-1B decode at 1024 tokens
      {1, 1, 32, 8, 128, 2048, {127}, {1}},            // Llama-3.1-8B decode at 128 tokens
      {3, 1, 6, 2, 128, 300, {0, 299, 5}, {1, 1, 0}},  // first token, last position, an idle row
      {2, 2, 8, 8, 64, 512, {40, 511}, {2, 2}},        // MHA; row 2 of batch 1 is past max_seq
      {1, 4, 24, 8, 96, 1000, {2}, {3}},               // group of 3, odd head_dim, padding row
      {1, 1, 16, 2, 64, 4096, {4095}, {1}},            // group of 8, a full long cache
      {2, 1, 8, 2, 256, 256, {100, 7}, {1, 1}},        // the widest head
      // sliding windows: one position, shorter than the split count, longer than the context
      {1, 1, 32, 8, 64, 2048, {1023}, {1}, 1},
      {1, 1, 32, 8, 128, 2048, {1500}, {1}, 40},
      {2, 4, 8, 2, 64, 512, {300, 2}, {4, 3}, 512},
      // soft-capped scores (Gemma 2)
      {1, 1, 32, 8, 128, 2048, {1500}, {1}, 0, 1.5f},
      {1, 1, 16, 2, 64, 4096, {4095}, {1}, 40, 0.7f},
      // GPT-OSS's sinks (64 heads of 64, 8 KV heads), windowed and not
      {1, 1, 64, 8, 64, 2048, {1500}, {1}, 128, 0, true},
      {2, 1, 64, 8, 64, 2048, {1023, 3}, {1, 1}, 0, 0, true},
      // BLOOM's ALiBi (MHA: a group a head), a long context and a short one
      {1, 1, 16, 16, 64, 2048, {1500}, {1}, 0, 0, false, true},
      {2, 1, 12, 12, 128, 512, {300, 3}, {1, 1}, 0, 0, false, true},
      {1, 1, 32, 8, 64, 2048, {1023}, {1}, 0, 0, false, true},  // (a group of 4: each head its own slope)
  };
  for (DType ct : {DType::F32, DType::BF16})
    for (const AttentionCase& sh : shapes)
      check_attention_case(sh, ct, seed, [](const AttentionArgs& g) {
        const int splits = attention_cuda_splits(g);
        REQUIRE(splits >= 1);
        MESSAGE("splits " << splits);
        Dev scratch(std::vector<float>(attention_cuda_scratch_floats(g), kNaN));
        attention_split_cuda(g, scratch.as<float>(), nullptr);
        sync_ok();  // before scratch is freed
      });
}

TEST_CASE("cuda: head_matmul, MLA and MoE kernels match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, 8192);
  uint32_t seed = 300;
  {
    const int64_t rows = 5, heads = 16, k = 128, m = 512;
    const auto x = random_floats(size_t(rows * heads * k), seed++);
    const auto w = as_dtype(random_floats(size_t(heads * m * k), seed++, 0.05f), DType::BF16);
    std::vector<float> yc(size_t(rows * heads * m), kNaN);
    Dev dx(x), dw(w), dy(yc);
    head_matmul_cpu({x.data(), w.data(), DType::BF16, yc.data(), rows, heads, k, m, nullptr, 1}, pool);
    head_matmul_cuda({dx.as<float>(), dw.p, DType::BF16, dy.as<float>(), rows, heads, k, m, nullptr, 1}, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
  }
  for (DType ct : {DType::F32, DType::BF16}) {
    CAPTURE(std::string(dtype_name(ct)));
    const int64_t batch = 2, chunk = 3, S = 700, H = 16, rank = 512, rope = 64, rows = batch * chunk;
    std::vector<int32_t> start = {650, 0}, valid = {3, 2};
    auto cache = as_dtype(random_floats(size_t(batch * S * (rank + rope)), seed++), ct);
    const auto ckv = random_floats(size_t(rows * rank), seed++), kpe = random_floats(size_t(rows * rope), seed++);
    Dev dc(cache), dckv(ckv), dkpe(kpe), ds(start), dn(valid);
    mla_kv_write_cpu(
        {ckv.data(), kpe.data(), start.data(), valid.data(), cache.data(), ct, batch, chunk, S, rank, rope}, pool);
    mla_kv_write_cuda(
        {dckv.as<float>(), dkpe.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dc.p, ct, batch, chunk, S, rank, rope},
        nullptr);
    sync_ok();
    CHECK(dc.get<uint8_t>() == cache);
    const auto ql = random_floats(size_t(rows * H * rank), seed++, 0.05f),
               qp = random_floats(size_t(rows * H * rope), seed++);
    std::vector<float> oc(size_t(rows * H * rank), kNaN);
    Dev dql(ql), dqp(qp), dout(oc);
    mla_attention_cpu({ql.data(), qp.data(), cache.data(), ct, start.data(), valid.data(), oc.data(), batch, chunk, S,
                       H, rank, rope, 0.07f},
                      pool);
    mla_attention_cuda({dql.as<float>(), dqp.as<float>(), dc.p, ct, ds.as<int32_t>(), dn.as<int32_t>(),
                        dout.as<float>(), batch, chunk, S, H, rank, rope, 0.07f},
                       nullptr);
    sync_ok();
    const auto og = dout.get<float>();
    CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
  }
  // Routing and experts: every method; V2-Lite's and V3's expert counts and groups; dims that take
  // the 16-byte path and odd ones that do not; a padding row (n_valid) and a token whose hidden
  // state is NaN (the serial top-k then decides, on both sides).
  // GPT-OSS (gpt_oss): the router's bias on its logits (moe_route version 2), the experts' biases and
  // clamped SwiGLU (moe_experts version 4), at gpt-oss-20b's expert count and top-k, a padding row.
  // ERNIE 4.5 MoE (ernie): noaux_tc on softmax scores, one group, the weights over max(sum, norm_min) (moe_route
  // version 3) with a floor above most sums, at ERNIE-4.5-21B-A3B's expert count and top-k. Method 3: Phi-3.5-MoE's
  // sparsemixer at its expert count, a threshold that keeps several experts' softmax. write: FlexOlmo's experts
  // writing their sum (moe_experts version 5, accumulate 0) over valid rows holding NaN, padding rows kept.
  struct MoeCase {
    int64_t method, batch, chunk, dim, E, K, F, groups, topk_group;
    std::vector<int32_t> valid;
    int64_t nan_row;
    bool gpt_oss = false, ernie = false, write = false;
  };
  const MoeCase cases[] = {
      {0, 1, 7, 256, 64, 6, 96, 8, 3, {}, -1},
      {1, 1, 7, 256, 64, 6, 96, 8, 3, {}, -1},
      {2, 1, 7, 256, 64, 6, 96, 8, 3, {}, -1},
      {0, 1, 1, 2048, 64, 6, 176, 1, 1, {}, -1},
      {2, 2, 3, 512, 256, 8, 64, 8, 4, {3, 2}, -1},
      {1, 1, 5, 250, 16, 4, 50, 4, 2, {}, 3},
      {0, 1, 4, 257, 8, 2, 33, 1, 1, {}, -1},
      {0, 2, 3, 256, 32, 4, 96, 1, 1, {3, 2}, -1, true},
      {2, 2, 3, 256, 64, 6, 96, 1, 1, {3, 1}, -1, false, true},
      {3, 2, 3, 256, 16, 2, 96, 1, 1, {3, 2}, -1},  // (Phi-3.5-MoE's sparsemixer: moe_route version 4)
      {0, 2, 3, 256, 7, 5, 64, 1, 1, {3, 1}, -1, false, false, true},  // (FlexOlmo: moe_experts version 5)
  };
  for (const MoeCase& mc : cases) {
    const int64_t method = mc.method, rows = mc.batch * mc.chunk, dim = mc.dim, E = mc.E, K = mc.K, F = mc.F;
    CAPTURE(method);
    CAPTURE(dim);
    CAPTURE(E);
    CAPTURE(F);
    CAPTURE(mc.gpt_oss);
    CAPTURE(mc.ernie);
    CAPTURE(mc.write);
    auto h = random_floats(size_t(rows * dim), seed++);
    if (mc.nan_row >= 0) h[size_t(mc.nan_row * dim + 3)] = kNaN;
    const auto gate = random_floats(size_t(E * dim), seed++, 0.1f), bias = random_floats(size_t(E), seed++, 0.1f);
    std::vector<int32_t> ids_c(size_t(rows * K), -7);
    std::vector<float> w_c(size_t(rows * K), kNaN);
    const std::vector<int32_t> valid = mc.valid.empty() ? std::vector<int32_t>{0} : mc.valid;
    Dev dh(h), dg(gate), db(bias), dids(ids_c), dw(w_c), dvalid(valid);
    const int32_t* nv = mc.valid.empty() ? nullptr : mc.valid.data();
    MoeRouteArgs rc{h.data(),
                    gate.data(),
                    DType::F32,
                    bias.data(),
                    DType::F32,
                    ids_c.data(),
                    w_c.data(),
                    rows,
                    dim,
                    E,
                    K,
                    MoeTopk(method),
                    method == 2 && !mc.ernie ? MoeScoring::kSigmoid : MoeScoring::kSoftmax,
                    mc.groups,
                    mc.topk_group,
                    method == 2 || mc.gpt_oss,
                    mc.gpt_oss || mc.ernie ? 1.0f : 2.5f,
                    nv,
                    mc.batch,
                    mc.gpt_oss,
                    mc.ernie,
                    0.9f};
    rc.jitter_eps = method == 3 ? 0.3f : 0.0f;
    moe_route_cpu(rc, pool);
    MoeRouteArgs rg = rc;
    rg.h = dh.as<float>();
    rg.gate = dg.p;
    rg.bias = db.p;
    rg.ids = dids.as<int32_t>();
    rg.weights = dw.as<float>();
    rg.n_valid = nv ? dvalid.as<int32_t>() : nullptr;
    {
      Dev scratch(std::vector<float>(moe_route_cuda_scratch_floats(rg), kNaN));
      moe_route_cuda(rg, scratch.as<float>(), nullptr);
      sync_ok();
    }
    CHECK(dids.get<int32_t>() == ids_c);
    const auto wg = dw.get<float>();
    if (mc.nan_row < 0) CHECK(rel_l2(wg.data(), w_c.data(), w_c.size()) < 1e-5);
    for (size_t i = 0; i < wg.size(); ++i) {
      if (std::isnan(w_c[i])) CHECK(std::isnan(wg[i]));
      else CHECK(std::fabs(wg[i] - w_c[i]) <= 1e-5f * (1.0f + std::fabs(w_c[i])));
    }
    if (mc.nan_row >= 0) continue;  // the experts below would only spread the NaN
    const auto wgu = as_dtype(random_floats(size_t(E * 2 * F * dim), seed++, 0.05f), DType::BF16);
    const auto wdown = as_dtype(random_floats(size_t(E * dim * F), seed++, 0.05f), DType::BF16);
    auto yc = random_floats(size_t(rows * dim), seed++);
    if (mc.write)  // (the rows the experts write hold NaN: a kernel that read them would give NaN)
      for (int64_t r = 0; r < rows; ++r)
        if (mc.valid.empty() || r % mc.chunk < mc.valid[size_t(r / mc.chunk)])
          std::fill(yc.begin() + r * dim, yc.begin() + (r + 1) * dim, kNaN);
    std::vector<float> ws(size_t(rows * K * F), kNaN);
    const auto gub = random_floats(size_t(E * 2 * F), seed++, 0.5f),
               downb = random_floats(size_t(E * dim), seed++, 0.5f);
    Dev dgu(wgu), ddown(wdown), dy(yc), dws(ws), dgub(gub), ddownb(downb);
    MoeExpertsArgs ec{h.data(),
                      ids_c.data(),
                      w_c.data(),
                      wgu.data(),
                      wdown.data(),
                      DType::BF16,
                      yc.data(),
                      ws.data(),
                      rows,
                      dim,
                      E,
                      F,
                      K,
                      nv,
                      mc.batch};
    if (mc.gpt_oss) {
      ec.gu_bias = gub.data();
      ec.down_bias = downb.data();
      ec.activation = MoeActivation::kClampedSwiglu;
      ec.alpha = 1.702f;
      ec.limit = 0.05f;  // (low enough that these small values reach it)
    }
    ec.accumulate = !mc.write;
    moe_experts_cpu(ec, pool);
    MoeExpertsArgs eg = ec;
    eg.h = dh.as<float>();
    eg.ids = dids.as<int32_t>();
    eg.weights = dw.as<float>();
    eg.w_gu = dgu.p;
    eg.w_down = ddown.p;
    eg.y = dy.as<float>();
    eg.ws = dws.as<float>();
    eg.n_valid = nv ? dvalid.as<int32_t>() : nullptr;
    if (mc.gpt_oss) {
      eg.gu_bias = dgub.as<float>();
      eg.down_bias = ddownb.as<float>();
    }
    moe_experts_cuda(eg, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
  }
}

// head_matmul version 2 (DeepSeek's kv_b rows: W_UK transposed, W_UV not) at V2-Lite's shapes and small
// ones (k = 37, 96), every dtype the compiler emits, against the CPU kernel; x 4 bytes past a 16-byte
// boundary (the quantized rows' scalar loads) as well as aligned; padding rows untouched.
TEST_CASE("cuda: head_matmul version 2 (kv_b rows, transposed or not, float or quantized) matches the CPU kernel") {
  if (skip_without_gpu()) return;
  uint32_t seed = 900;
  LcgBytes next_byte{901};
  struct Case {
    DType w;
    int64_t group;  // values per scale (float, i8: 0)
    bool zeros;
  };
  const Case cases[] = {{DType::F32, 0, false},    {DType::BF16, 0, false}, {DType::I8, 0, false},
                        {DType::I4, 32, false},    {DType::I4, 128, true},  {DType::F8E4M3, 128, false},
                        {DType::F8E4M3, 48, false}};
  const int64_t batch = 2, chunk = 3, rows = batch * chunk;
  const std::vector<int32_t> valid = {3, 1};
  for (const bool transposed : {false, true})
    for (const int64_t heads : {16, 3})
      for (const bool misaligned : {false, true})
        for (const Case& c : cases) {
          CAPTURE(transposed);
          CAPTURE(heads);
          CAPTURE(misaligned);
          CAPTURE(std::string(dtype_name(c.w)));
          CAPTURE(c.group);
          // V2-Lite: W_UK (16·128 rows of the rank 512, transposed), W_UV (16·128 rows of 512); or 3 heads of
          // 40 (not transposed: rows of 96) or 37 (transposed: rows of 96).
          const int64_t k = heads == 16 ? (transposed ? 128 : 512) : (transposed ? 37 : 96);
          const int64_t m = heads == 16 ? (transposed ? 512 : 128) : (transposed ? 96 : 40);
          const int64_t n = transposed ? heads * k : heads * m, cols = transposed ? m : k;
          // (groups the verifier allows: i4 dividing the row, f8e4m3 up to it)
          if ((c.w == DType::I4 && cols % c.group != 0) || (c.w == DType::F8E4M3 && !f8_group_fits(cols, c.group)))
            continue;
          std::vector<uint8_t> w;
          if (dtype_is_float(c.w)) {
            w = as_dtype(random_floats(size_t(n * cols), seed++, 0.05f), c.w);
          } else {
            w.resize(size_t(c.w == DType::I4 ? n * cols / 2 : n * cols));
            for (uint8_t& b : w) {
              b = next_byte();
              if (c.w == DType::F8E4M3 && (b & 0x7fu) == 0x7fu) b &= 0xfeu;  // not the NaN codes
            }
          }
          const int64_t spr = c.group == 0 ? 1 : (cols + c.group - 1) / c.group;
          const auto scale = random_floats(size_t(n * spr), seed++, 0.02f);
          std::vector<int8_t> zero(c.zeros ? size_t(n * spr) : 0);
          for (int8_t& z : zero) z = int8_t(next_byte() % 17);
          const auto x = random_floats(size_t(rows * heads * k), seed++);
          const auto y0 = random_floats(size_t(rows * heads * m), seed++);
          std::vector<float> yc = y0;
          auto x_dev = x;  // (misaligned: one float ahead of it on the device)
          if (misaligned) x_dev.insert(x_dev.begin(), 0.0f);
          Dev dx(x_dev), dw(w), dy(y0), dv(valid), ds(scale), dz(zero);
          HeadMatmulArgs a{x.data(), w.data(), c.w, yc.data(), rows, heads, k, m, valid.data(), batch};
          a.transposed = transposed;
          a.w_scale = dtype_is_float(c.w) ? nullptr : scale.data();
          a.group = c.group;
          a.w_zero = c.zeros ? zero.data() : nullptr;
          ThreadPool pool(2, head_matmul_scratch_floats(k, m, transposed, c.w));
          head_matmul_cpu(a, pool);
          HeadMatmulArgs g = a;
          g.x = dx.as<float>() + (misaligned ? 1 : 0);
          g.w = dw.p;
          g.y = dy.as<float>();
          g.n_valid = dv.as<int32_t>();
          g.w_scale = a.w_scale ? ds.as<float>() : nullptr;
          g.w_zero = c.zeros ? dz.as<int8_t>() : nullptr;
          head_matmul_cuda(g, nullptr);
          sync_ok();
          const auto yg = dy.get<float>();
          CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
          int64_t changed = 0;  // padding rows (past their sequence's valid count: rows 4 and 5) keep y0
          for (int64_t r = 0; r < rows; ++r)
            if (r % chunk >= valid[size_t(r / chunk)])
              for (int64_t o = 0; o < heads * m; ++o)
                changed += yg[size_t(r * heads * m + o)] != y0[size_t(r * heads * m + o)];
          CHECK(changed == 0);
        }
}

// Quantized routed experts (moe_experts versions 2-3) against the CPU kernel: i8 (a scale a row), i4 in
// groups of 32 to 128 with and without zero points (0 to 16), f8e4m3 in groups with a short last one and
// whole rows; dims whose rows take the GPU's vector loads and ones that do not (rows not of whole 8-value
// steps, or h 4 bytes past a 16-byte boundary); skipped ids (-1 and out of range) and a padding row.
TEST_CASE("cuda: quantized MoE experts (i8, i4 with and without zero points, f8e4m3) match the CPU kernel") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, 8192);
  uint32_t seed = 500;
  LcgBytes next_byte{777};
  struct Case {
    DType w;
    int64_t dim, ffn, gu_group, down_group;  // groups: values per scale (i8: 0)
    bool zeros, misaligned;
  };
  const Case cases[] = {
      {DType::I8, 72, 40, 0, 0, false, false},       {DType::I8, 70, 38, 0, 0, false, false},
      {DType::I4, 64, 64, 32, 32, false, false},     {DType::I4, 256, 128, 64, 128, true, false},
      {DType::I4, 96, 32, 32, 32, true, true},       {DType::F8E4M3, 80, 96, 48, 48, false, false},
      {DType::F8E4M3, 64, 40, 64, 40, false, false}, {DType::F8E4M3, 72, 50, 16, 50, false, true},
  };
  const int64_t batch = 2, chunk = 3, rows = batch * chunk, E = 4, K = 2;
  const std::vector<int32_t> valid = {3, 1};  // the second sequence: one token, two padding rows
  for (const Case& c : cases) {
    CAPTURE(std::string(dtype_name(c.w)));
    CAPTURE(c.dim);
    CAPTURE(c.ffn);
    CAPTURE(c.zeros);
    CAPTURE(c.misaligned);
    const int64_t dim = c.dim, F = c.ffn;
    auto bytes_of = [&](int64_t m, int64_t k) {
      std::vector<uint8_t> w(size_t(c.w == DType::I4 ? m * k / 2 : m * k));
      for (uint8_t& b : w) {
        b = next_byte();
        if (c.w == DType::F8E4M3 && (b & 0x7fu) == 0x7fu) b &= 0xfeu;  // not the NaN codes
      }
      return w;
    };
    auto scales_per_row = [&](int64_t k, int64_t group) { return group == 0 ? 1 : (k + group - 1) / group; };
    const std::vector<uint8_t> wgu = bytes_of(E * 2 * F, dim), wdown = bytes_of(E * dim, F);
    const int64_t gs = scales_per_row(dim, c.gu_group), ds = scales_per_row(F, c.down_group);
    const float amp = c.w == DType::F8E4M3 ? 0.01f : 0.02f;
    const auto gu_scale = random_floats(size_t(E * 2 * F * gs), seed++, amp);
    const auto down_scale = random_floats(size_t(E * dim * ds), seed++, amp);
    std::vector<int8_t> gu_zero(c.zeros ? size_t(E * 2 * F * gs) : 0), down_zero(c.zeros ? size_t(E * dim * ds) : 0);
    for (int8_t& z : gu_zero) z = int8_t(next_byte() % 17);
    for (int8_t& z : down_zero) z = int8_t(next_byte() % 17);
    const auto h = random_floats(size_t(rows * dim), seed++);
    std::vector<int32_t> ids(size_t(rows * K));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(next_byte() % E);
    ids[1] = -1;          // skipped
    ids[4] = int32_t(E);  // out of range: skipped
    const auto weights = random_floats(size_t(rows * K), seed++);
    const auto y0 = random_floats(size_t(rows * dim), seed++);
    std::vector<float> yc = y0, ws(size_t(rows * K * F), 0.0f);
    auto h_dev = h;  // (misaligned: one float ahead of it on the device)
    if (c.misaligned) h_dev.insert(h_dev.begin(), 0.0f);
    Dev dh(h_dev), dids(ids), dw(weights), dgu(wgu), ddown(wdown), dy(y0), dws(ws), dv(valid), dgs(gu_scale),
        dds(down_scale), dgz(gu_zero), ddz(down_zero);
    MoeExpertsArgs a{
        h.data(), ids.data(), weights.data(), wgu.data(), wdown.data(), c.w, yc.data(), ws.data(), rows, dim, E,
        F,        K,          valid.data(),   batch};
    a.gu_scale = gu_scale.data();
    a.down_scale = down_scale.data();
    a.gu_group = c.gu_group;
    a.down_group = c.down_group;
    a.gu_zero = c.zeros ? gu_zero.data() : nullptr;
    a.down_zero = c.zeros ? down_zero.data() : nullptr;
    moe_experts_cpu(a, pool);
    MoeExpertsArgs g{dh.as<float>() + (c.misaligned ? 1 : 0),
                     dids.as<int32_t>(),
                     dw.as<float>(),
                     dgu.p,
                     ddown.p,
                     c.w,
                     dy.as<float>(),
                     dws.as<float>(),
                     rows,
                     dim,
                     E,
                     F,
                     K,
                     dv.as<int32_t>(),
                     batch};
    g.gu_scale = dgs.as<float>();
    g.down_scale = dds.as<float>();
    g.gu_group = c.gu_group;
    g.down_group = c.down_group;
    g.gu_zero = c.zeros ? dgz.as<int8_t>() : nullptr;
    g.down_zero = c.zeros ? ddz.as<int8_t>() : nullptr;
    moe_experts_cuda(g, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
    CHECK(rel_l2(yc.data(), y0.data(), y0.size()) > 1e-3);  // the experts added something
    for (int64_t r = 0; r < rows; ++r)                      // padding rows: untouched on both
      if (r % chunk >= valid[size_t(r / chunk)])
        for (int64_t d = 0; d < dim; ++d) CHECK(yg[size_t(r * dim + d)] == y0[size_t(r * dim + d)]);
  }
}

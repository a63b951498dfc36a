// kiln compile --quantize int8 (compiler/passes/quantize.h): the formula against torch's, the
// quantized plans against transformers running the same dequantized weights
// (tools/fixtures_quant.py), bad options and bad weights, and the verifier on edited plans.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

#include "compile_checks.h"
#include "compiler/compile.h"
#include "compiler/error.h"
#include "compiler/passes/quantize.h"
#include "compiler/safetensors.h"
#include "plan_edit.h"
#include "plan_edit_check.h"
#include "runtime/context.h"
#include "runtime/plan.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

std::vector<float> st_f32(const StTensor& t) {
  std::vector<float> v(size_t(t.numel()));
  convert_to_f32(t.data, t.dtype, v.data(), v.size());
  return v;
}

CompileOptions int8_options(const std::string& dir, const std::string& out, const std::string& dtype = "f32") {
  CompileOptions o;
  o.model_dir = dir;
  o.output = out;
  o.dtype = dtype;
  o.quantize = "int8";
  o.batch = 1;
  o.chunk = 8;
  o.max_seq = 64;
  return o;
}

using kiln::test::check_edits_refused;
using kiln::test::PlanEdit;

// The first launch of the plan's first program (prefill) of op `op` whose input `w` has dtype `dt`
// (w < 0: any launch of the op); fails the test when there is none.
fb::Launch* first_launch(fb::Plan* p, const std::string& op, int w = -1, fb::DType dt = fb::DType::F32) {
  auto* prog = p->mutable_programs()->GetMutableObject(0);
  for (flatbuffers::uoffset_t i = 0; i < prog->launches()->size(); ++i) {
    auto* l = prog->mutable_launches()->GetMutableObject(i);
    if (p->kernels()->Get(l->kernel())->name()->str() == op &&
        (w < 0 || p->tensors()->Get(l->inputs()->Get(flatbuffers::uoffset_t(w)))->dtype() == dt))
      return l;
  }
  FAIL("no " << op << " launch");
  return nullptr;
}

auto* tensor_of(fb::Plan* p, uint32_t t) { return p->mutable_tensors()->GetMutableObject(t); }

// The bytes of the plan o compiles to, which load.
std::vector<uint8_t> compiled_bytes(const CompileOptions& o) {
  compile_model(o);
  std::vector<uint8_t> bytes = kiln::test::read_bytes(o.output);
  REQUIRE(kiln::test::load_status(bytes).is_ok());
  return bytes;
}

std::shared_ptr<const Plan> load_plan(const std::string& path) {
  auto r = Plan::load_file(path);
  REQUIRE_MESSAGE(r.is_ok(), r.status().message());
  return r.take();
}

}  // namespace

TEST_CASE("quantize: per-row int8 equals torch's formula exactly on a fixture's weight") {
  // tools/fixtures_quant.py stored torch's q and scale of layer 0's q_proj.
  const std::string dir = kiln::test::fixture("gqa_f32");
  auto ref = SafetensorsFile::open(dir + "/reference_int8.safetensors");
  auto ck = SafetensorsFile::open(dir + "/model.safetensors");
  const StTensor& w = ck->tensors().at("model.layers.0.self_attn.q_proj.weight");
  const StTensor& tq = ref->tensors().at("check_q");
  const StTensor& ts = ref->tensors().at("check_scale");
  REQUIRE(tq.shape == w.shape);
  const int64_t m = w.shape[0], k = w.shape[1];
  const std::vector<float> wf = st_f32(w);
  std::vector<int8_t> q(static_cast<size_t>(m * k));
  std::vector<float> s(static_cast<size_t>(m));
  quantize_rows_int8(wf.data(), m, k, q.data(), s.data(), "q_proj");
  CHECK(std::memcmp(q.data(), tq.data, q.size()) == 0);
  CHECK(std::memcmp(s.data(), ts.data, s.size() * 4) == 0);
  // The formula's own properties: every row reaches ±127 at its largest value, and q·scale is within
  // half a step of w.
  for (int64_t j = 0; j < m; ++j) {
    int amax = 0;
    for (int64_t i = 0; i < k; ++i) {
      amax = std::max(amax, std::abs(int(q[size_t(j * k + i)])));
      CHECK(std::fabs(float(q[size_t(j * k + i)]) * s[size_t(j)] - wf[size_t(j * k + i)]) <= 0.5001f * s[size_t(j)]);
    }
    CHECK(amax == 127);
  }
}

TEST_CASE("quantize: zero and tiny rows, ties, and non-finite weights") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  // row 0: zeros; row 1: a subnormal whose scale underflows; row 2: 127 and exact halves (ties to even)
  const float w[3][4] = {{0, 0, 0, 0}, {tiny, -tiny, 0, tiny}, {127.0f, 0.5f, 1.5f, -2.5f}};
  int8_t q[12];
  float s[3];
  quantize_rows_int8(&w[0][0], 3, 4, q, s, "t");
  CHECK(s[0] == 0.0f);
  CHECK(s[1] == 0.0f);
  CHECK(s[2] == 1.0f);
  for (int i = 0; i < 8; ++i) CHECK(q[i] == 0);
  CHECK(q[8] == 127);
  CHECK(q[9] == 0);
  CHECK(q[10] == 2);
  CHECK(q[11] == -2);
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    const float b[2][2] = {{1, 2}, {3, bad}};
    CHECK_THROWS_WITH_AS(quantize_rows_int8(&b[0][0], 2, 2, q, s, "layer.w"),
                         doctest::Contains("cannot quantize 'layer.w': row 1 has a non-finite value"), CompileError);
  }
}

TEST_CASE("quantize: int8 plans match transformers on the same dequantized weights (logits and greedy tokens)") {
  TempDir d;
  struct Case {
    const char* name;
    bool head;
    int i8_tensors;     // 2 layers × (qkv, o, gate|up, down), and the head
    bool lora = false;  // a LoRA fixture: its adapter merged into its base first (peft's merge in the reference)
  };
  for (const Case& c :
       {Case{"gqa_f32", false, 8}, Case{"gqa_f32", true, 9}, Case{"bias_f32", false, 8}, Case{"tied_f32", false, 8},
        Case{"tied_f32", true, 9}, Case{"bf16", false, 8}, Case{"all_linear_r8", false, 8, true}}) {
    CAPTURE(std::string(c.name));
    CAPTURE(c.head);
    const std::string dir = c.lora ? kiln::test::fixtures_root() + "/lora/" + c.name : kiln::test::fixture(c.name);
    const auto ref =
        kiln::test::load_reference(dir, c.head ? "reference_int8_head.safetensors" : "reference_int8.safetensors");
    const auto plain = kiln::test::load_reference(dir);
    CompileOptions o = int8_options(c.lora ? kiln::test::fixture(kiln::test::read_line(dir + "/base.txt")) : dir,
                                    d / (std::string(c.name) + (c.head ? "_head" : "") + ".kplan"));
    o.quantize_head = c.head;
    if (c.lora) o.lora = {{dir + "/adapter", 1.0}};
    const CompileSummary s = compile_model(o);
    CHECK(s.notes.find("int8 weights (per-row scales)") != std::string::npos);
    auto plan = load_plan(o.output);
    CHECK(plan->has_target("cpu"));
    CHECK_FALSE(plan->has_target("cuda"));
    int i8 = 0, scales = 0;
    for (const TensorInfo& t : plan->tensors()) {
      i8 += t.dtype == DType::I8;
      scales += t.name.size() > 6 && t.name.compare(t.name.size() - 6, 6, ".scale") == 0;
    }
    CHECK(i8 == c.i8_tensors);
    CHECK(scales == c.i8_tensors);
    CHECK(plan->model().notes.find("int8 weights") != std::string::npos);
    // A tied head with --quantize-head is an i8 copy; the embedding keeps its f32 rows.
    const bool copy = c.head && std::string(c.name) == "tied_f32";
    CHECK((s.notes.find("the tied LM head as an i8 copy") != std::string::npos) == copy);
    const TensorInfo* embed = nullptr;
    const TensorInfo* head_copy = nullptr;
    for (const TensorInfo& t : plan->tensors()) {
      if (t.name == "model.embed_tokens.weight") embed = &t;
      if (t.name == "model.embed_tokens.weight.i8") head_copy = &t;
    }
    REQUIRE(embed != nullptr);
    CHECK(embed->dtype == DType::F32);  // the embedding is never quantized
    CHECK((head_copy != nullptr) == copy);
    if (head_copy) {
      CHECK(head_copy->dtype == DType::I8);
      CHECK(head_copy->shape == embed->shape);
      // The decode program's last matmul (the head) reads the copy, with its scales.
      const ProgramInfo& dec = plan->programs()[size_t(plan->find_program("decode"))];
      const LaunchInfo* head = nullptr;
      for (const LaunchInfo& l : dec.launches)
        if (std::string(plan->kernels()[l.kernel]->name) == "matmul") head = &l;
      REQUIRE(head != nullptr);
      CHECK(plan->tensors()[head->inputs[1]].name == "model.embed_tokens.weight.i8");
      CHECK(plan->tensors()[head->inputs[4]].name == "model.embed_tokens.weight.i8.scale");
    }
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      auto ctx = kiln::test::cpu_context(plan, threads);
      const std::vector<float> logits = kiln::test::score_reference(*ctx, ref);
      const double err = kiln::test::reference_error(logits, ref);
      CHECK(err <= 1e-4);
      // The quantization moved the logits by far more than that bound, so this plan is quantized.
      CHECK(kiln::test::rel_l2(logits.data(), plain.logits.data(), plain.logits.size()) > 1e-3);
      const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
      CHECK(kiln::test::greedy_continuation(*ctx, ref.prompt_ids, n_new) == ref.greedy_ids);
      const std::string what = std::string(c.name) + (c.head ? " (head too)" : "") + ": rel L2 " + std::to_string(err);
      MESSAGE(what);
    }
  }
  // The plan dtype for the rest (bf16 norms, embeddings, head and KV cache) within the low-precision bound.
  const auto ref = kiln::test::load_reference(kiln::test::fixture("bf16"), "reference_int8.safetensors");
  CompileOptions o = int8_options(kiln::test::fixture("bf16"), d / "bf16_plan.kplan", "");
  compile_model(o);
  auto plan = load_plan(o.output);
  CHECK(plan->model().plan_dtype == DType::BF16);
  auto ctx = Context::create(plan, {}).take();
  std::vector<float> logits(ref.logits.size());
  REQUIRE(ctx->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
  CHECK(kiln::test::rel_l2(logits.data(), ref.logits.data(), ref.logits.size()) <= 2e-2);
}

TEST_CASE("quantize: group-wise int4 equals AutoRound's round-to-nearest formula exactly on a fixture's weight") {
  // tools/fixtures_quant.py stored AutoRound's q (-8..7) and scales (f32, of both signs) of layer 0's q_proj,
  // groups of 32.
  const std::string dir = kiln::test::fixture("gqa_f32");
  auto ref = SafetensorsFile::open(dir + "/reference_int4_g32.safetensors");
  auto ck = SafetensorsFile::open(dir + "/model.safetensors");
  const StTensor& w = ck->tensors().at("model.layers.0.self_attn.q_proj.weight");
  const StTensor& tq = ref->tensors().at("check_q");
  const StTensor& ts = ref->tensors().at("check_scale");
  const int64_t m = w.shape[0], k = w.shape[1], group = 32;
  REQUIRE(tq.shape == w.shape);
  REQUIRE(ts.shape == std::vector<int64_t>{m, k / group});
  const std::vector<float> wf = st_f32(w);
  std::vector<uint8_t> packed(static_cast<size_t>(m * k / 2));
  std::vector<float> s(static_cast<size_t>(m * k / group));
  quantize_rows_int4(wf.data(), m, k, group, packed.data(), s.data(), "q_proj");
  CHECK(std::memcmp(s.data(), ts.data, s.size() * 4) == 0);
  const int8_t* want = reinterpret_cast<const int8_t*>(tq.data);
  int mismatched = 0, lowest = 0, highest = 0;
  for (int64_t i = 0; i < m * k; ++i) {
    const int q = load_i4(packed.data(), uint64_t(i));
    mismatched += q != want[i];
    lowest = std::min(lowest, q);
    highest = std::max(highest, q);
  }
  CHECK(mismatched == 0);
  CHECK(lowest == -8);  // both ends of the range are used
  CHECK(highest == 7);
  // Groups whose extreme is positive (a negative scale) and negative (a positive one).
  CHECK(std::count_if(s.begin(), s.end(), [](float v) { return v < 0; }) > 0);
  CHECK(std::count_if(s.begin(), s.end(), [](float v) { return v > 0; }) > 0);
}

// DeepSeek's MLA q and kv_a projections reach the plan as rows of the checkpoint tensors split and
// reordered (q_nope / q_pe, kv_c / kv_pe, the rope rows in rotate-half order): quantized, each must be
// exactly those rows of the unquantized plan (whose order the parity tests check) quantized by kiln's
// formula, scales and zero points included: quantizing the whole tensor and taking rows changes nothing.
TEST_CASE("quantize: DeepSeek's MLA q, kv_a and kv_b rows, split and reordered, are those rows quantized") {
  TempDir d;
  const std::string dir = kiln::test::fixture("v2_greedy_yarn", "deepseek");  // (q_proj: rows of 64, int4 groups)
  CompileOptions o = int8_options(dir, d / "f32.kplan");
  o.quantize = "";
  compile_model(o);
  auto base = load_plan(o.output);
  auto find = [](const Plan& p, const std::string& name) -> const TensorInfo* {
    for (const TensorInfo& t : p.tensors())
      if (t.name == name) return &t;
    return nullptr;
  };
  for (const std::string scheme : {"int8", "int4", "int4 asymmetric", "fp8"}) {
    CAPTURE(scheme);
    CompileOptions q = int8_options(dir, d / (scheme + ".kplan"));
    q.quantize = scheme.substr(0, 4) == "int4" ? "int4" : scheme;
    q.asymmetric = scheme == "int4 asymmetric";
    const CompileSummary s = compile_model(q);
    CHECK_MESSAGE(s.notes.find("computed by the compiler") == std::string::npos, s.notes);
    auto plan = load_plan(q.output);
    int checked = 0;
    for (int layer = 0; layer < 3; ++layer)
      for (const std::string part : {"q_nope", "q_pe", "kv_c", "kv_pe", "w_uk", "w_uv"}) {
        const std::string prefix = "model.layers." + std::to_string(layer) + ".self_attn.";
        const std::string name = prefix + part + ".weight";
        CAPTURE(name);
        // kv_b's rows: W_UV's as the unquantized plan's per-head copy holds them, W_UK's that copy
        // (W_UKᵀ, heads × rank × nope) transposed back per head.
        const TensorInfo* w = find(*base, part == "w_uk" ? prefix + "w_uk_t.weight" : name);
        const TensorInfo *qw = find(*plan, name), *qs = find(*plan, name + ".scale"), *qz = find(*plan, name + ".zero");
        REQUIRE(w);
        REQUIRE(qw);
        REQUIRE(qs);
        REQUIRE((qz != nullptr) == q.asymmetric);
        const float* rows = static_cast<const float*>(base->weight_data(*w));
        int64_t m = w->shape[0], k = w->shape[1];
        std::vector<float> kv_b;
        if (w->shape.size() == 3) {
          const int64_t heads = w->shape[0], a = w->shape[1], b = w->shape[2];  // (heads, a, b)
          kv_b.resize(size_t(heads * a * b));
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < a; ++i)
              for (int64_t j = 0; j < b; ++j)
                kv_b[size_t(part == "w_uk" ? (h * b + j) * a + i : (h * a + i) * b + j)] = rows[(h * a + i) * b + j];
          m = heads * (part == "w_uk" ? b : a);
          k = part == "w_uk" ? a : b;
          rows = kv_b.data();
        }
        REQUIRE(qw->shape[0] == m);
        const int64_t groups = qs->shape.size() == 2 ? qs->shape[1] : 1;
        std::vector<float> scale(size_t(m * groups));
        std::vector<uint8_t> want(size_t(qw->size_bytes));
        std::vector<int8_t> zero(size_t(m * groups));
        if (q.quantize == "int8")
          quantize_rows_int8(rows, m, k, reinterpret_cast<int8_t*>(want.data()), scale.data(), name);
        else if (q.quantize == "int4")
          quantize_rows_int4(rows, m, k, k / groups, want.data(), scale.data(), name,
                             q.asymmetric ? zero.data() : nullptr);
        else quantize_rows_fp8(rows, m, k, k / groups, want.data(), scale.data(), name);
        REQUIRE(qs->size_bytes == scale.size() * 4);
        CHECK(std::memcmp(plan->weight_data(*qw), want.data(), want.size()) == 0);
        CHECK(std::memcmp(plan->weight_data(*qs), scale.data(), scale.size() * 4) == 0);
        if (qz) CHECK(std::memcmp(plan->weight_data(*qz), zero.data(), zero.size()) == 0);
        ++checked;
      }
    CHECK(checked == 18);
  }
}

TEST_CASE("quantize: int4 zero and tiny groups, ties, the range's ends, and non-finite weights") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  // One row of 32, groups of 4: zeros; subnormals (the scale underflows); a positive extreme (8: scale
  // -1) with rounding ties; a negative one (-8: scale 1) and a value past 7; a tie of magnitudes (4 and
  // -4: the positive one is -8, the other clamped to 7); the rest zeros (values 16-31 share bytes with
  // 0-15).
  const float w[32] = {0,    0,     0,     0,    tiny, -tiny,  0,    tiny,  8.0f, 0.5f,
                       1.5f, -2.5f, -8.0f, 7.4f, 3.0f, -0.49f, 4.0f, -4.0f, 2.0f, -1.0f};
  uint8_t p[16];
  float s[8];
  quantize_rows_int4(w, 1, 32, 4, p, s, "t");
  CHECK(s[0] == 0.0f);
  CHECK(s[1] == 0.0f);
  CHECK_FALSE(std::signbit(s[0]));  // +0, not the -0 that 0 / -8 gives
  CHECK_FALSE(std::signbit(s[1]));
  CHECK(s[2] == -1.0f);
  CHECK(s[3] == 1.0f);
  CHECK(s[4] == -0.5f);
  // 8 / -1 = -8; -0.5 and -1.5 round half to even; -8 / 1 = -8, 7.4 -> 7; 4 / -0.5 = -8, -4 / -0.5 = 8 -> 7
  const int want[20] = {0, 0, 0, 0, 0, 0, 0, 0, -8, 0, -2, 2, -8, 7, 3, 0, -8, 7, -4, 2};
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(load_i4(p, uint64_t(i)) == (i < 20 ? want[i] : 0));
    if (i >= 20) CHECK(s[i / 4] == 0.0f);
  }
  CHECK(p[0] == uint8_t((0 + 8) + (-8 + 8) * 16));  // value 0 (q 0) low, value 16 (q -8) high
  CHECK(p[8] == uint8_t((-8 + 8) + (0 + 8) * 16));  // value 8 (q -8) low, value 24 (q 0) high
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    float b[2][32] = {};
    b[1][1] = bad;
    uint8_t p2[32];
    float s2[4];
    CHECK_THROWS_WITH_AS(quantize_rows_int4(&b[0][0], 2, 32, 16, p2, s2, "layer.w"),
                         doctest::Contains("cannot quantize 'layer.w': row 1 has a non-finite value"), CompileError);
  }
}

TEST_CASE("quantize: int4 plans match transformers on AutoRound's dequantized weights") {
  TempDir d;
  struct Case {
    const char* name;
    bool head;
    int64_t group;
    int i4_tensors;     // 2 layers × (qkv, o, gate|up, down), and the head
    bool lora = false;  // a LoRA fixture: its adapter merged into its base first (peft's merge in the reference)
  };
  // With LoRA, kiln's merge and peft's differ in the last bit of some weights; at each group's extreme
  // the formula has no tie such a bit could decide (it is exactly -8), and this fixture has no other
  // value that close to a rounding tie, so that case is held to the same bound and greedy tokens. (compressed-tensors'
  // absmax / 7.5, kiln's formula until 2026-12-05, put the negative extreme at -7.5 up to one rounding: q -8 or -7 by
  // that bit, 1e-2 apart.)
  for (const Case& c : {Case{"gqa_f32", false, 32, 8}, Case{"gqa_f32", true, 32, 9}, Case{"gqa_f32", false, 64, 6},
                        Case{"gqa_f32", false, 0, 8}, Case{"tied_f32", true, 32, 9}, Case{"bf16", false, 32, 8},
                        Case{"all_linear_r8", false, 32, 8, true}}) {
    const double bound = 1e-4;
    CAPTURE(std::string(c.name));
    CAPTURE(c.head);
    CAPTURE(c.group);
    const std::string dir = c.lora ? kiln::test::fixtures_root() + "/lora/" + c.name : kiln::test::fixture(c.name);
    // group 0: no --group-size, so each weight takes the largest of 128, 96, 64 and 32 that divides its
    // rows (64, and 32 for the down projections' 160)
    const std::string file = "reference_int4_" + (c.group ? "g" + std::to_string(c.group) : std::string("default")) +
                             (c.head ? "_head" : "") + ".safetensors";
    const auto ref = kiln::test::load_reference(dir, file);
    const auto plain = kiln::test::load_reference(dir);
    CompileOptions o = int8_options(c.lora ? kiln::test::fixture(kiln::test::read_line(dir + "/base.txt")) : dir,
                                    d / (std::string(c.name) + file + ".kplan"));
    o.quantize = "int4";
    o.group_size = c.group;
    o.quantize_head = c.head;
    if (c.lora) o.lora = {{dir + "/adapter", 1.0}};
    const CompileSummary s = compile_model(o);
    const std::string groups = c.group ? std::to_string(c.group) : "64 (6 weights) or 32 (2)";
    CHECK(s.notes.find("int4 weights (symmetric, a scale per " + groups + " values)") != std::string::npos);
    // With groups of 64 the down projections' rows (160) are not whole groups: left in f32, and said.
    CHECK((s.notes.find("weights whose rows are not a whole number of int4 groups (--group-size 64)") !=
           std::string::npos) == (c.group == 64));
    auto plan = load_plan(o.output);
    CHECK_FALSE(plan->has_target("cuda"));
    int i4 = 0;
    for (const TensorInfo& t : plan->tensors()) {
      if (t.dtype != DType::I4) continue;
      ++i4;
      const TensorInfo* sc = nullptr;
      for (const TensorInfo& u : plan->tensors())
        if (u.name == t.name + ".scale") sc = &u;
      REQUIRE(sc != nullptr);
      const int64_t k = t.shape[1] * 2, group = c.group ? c.group : k == 160 ? 32 : 64;
      CHECK(sc->shape == std::vector<int64_t>{t.shape[0], k / group});
    }
    CHECK(i4 == c.i4_tensors);
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      auto ctx = kiln::test::cpu_context(plan, threads);
      const std::vector<float> logits = kiln::test::score_reference(*ctx, ref);
      const double err = kiln::test::reference_error(logits, ref);
      CHECK(err <= bound);
      CHECK(kiln::test::rel_l2(logits.data(), plain.logits.data(), plain.logits.size()) > 10 * bound);
      const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
      CHECK(kiln::test::greedy_continuation(*ctx, ref.prompt_ids, n_new) == ref.greedy_ids);
      const std::string what = std::string(c.name) + " g" + std::to_string(c.group) + (c.head ? " (head too)" : "") +
                               ": rel L2 " + std::to_string(err);
      MESSAGE(what);
    }
  }
  // A bf16 plan (bf16 norms, embedding, head and KV cache) within the low-precision bound.
  const auto bref = kiln::test::load_reference(kiln::test::fixture("bf16"), "reference_int4_g32.safetensors");
  CompileOptions o = int8_options(kiln::test::fixture("bf16"), d / "bf16_int4.kplan", "");
  o.quantize = "int4";
  o.group_size = 32;
  compile_model(o);
  auto plan = load_plan(o.output);
  CHECK(plan->model().plan_dtype == DType::BF16);
  auto ctx = Context::create(plan, {}).take();
  std::vector<float> logits(bref.logits.size());
  REQUIRE(ctx->score(bref.input_ids.data(), bref.rows, bref.tokens, logits.data()).is_ok());
  CHECK(kiln::test::rel_l2(logits.data(), bref.logits.data(), bref.logits.size()) <= 2e-2);
}

TEST_CASE("quantize: asymmetric int4 equals compressed-tensors' formula exactly, and its plans match transformers") {
  // The formula: layer 0's q_proj q (-8..7), scales and zero points as compressed-tensors computes them.
  {
    const std::string dir = kiln::test::fixture("gqa_f32");
    auto ref = SafetensorsFile::open(dir + "/reference_int4a_g32.safetensors");
    auto ck = SafetensorsFile::open(dir + "/model.safetensors");
    const StTensor& w = ck->tensors().at("model.layers.0.self_attn.q_proj.weight");
    const int64_t m = w.shape[0], k = w.shape[1], group = 32, groups = k / group;
    const StTensor& tz = ref->tensors().at("check_zero");
    REQUIRE(tz.shape == std::vector<int64_t>{m, groups});
    const std::vector<float> wf = st_f32(w);
    std::vector<uint8_t> packed(static_cast<size_t>(m * k / 2));
    std::vector<float> s(static_cast<size_t>(m * groups));
    std::vector<int8_t> z(static_cast<size_t>(m * groups));
    quantize_rows_int4(wf.data(), m, k, group, packed.data(), s.data(), "q_proj", z.data());
    CHECK(std::memcmp(s.data(), ref->tensors().at("check_scale").data, s.size() * 4) == 0);
    const int8_t* want_q = reinterpret_cast<const int8_t*>(ref->tensors().at("check_q").data);
    const int8_t* want_z = reinterpret_cast<const int8_t*>(tz.data);
    int mismatched = 0, off_center = 0;
    for (int64_t i = 0; i < m * k; ++i) mismatched += load_i4(packed.data(), uint64_t(i)) != want_q[i];
    for (int64_t i = 0; i < m * groups; ++i) {
      mismatched += int(z[size_t(i)]) - 8 != want_z[i];
      off_center += want_z[i] != 0;
    }
    CHECK(mismatched == 0);
    CHECK(off_center > 0);  // zero points that a symmetric formula would not have
  }
  // Zero groups and a group of one sign: (q - zp) · scale.
  {
    float w[32] = {};
    for (int i = 0; i < 16; ++i) w[16 + i] = float(i);  // group 1: 0 … 15 → scale 1, zp −8, q = w − 8
    uint8_t p[16];
    float s[2];
    int8_t z[2];
    quantize_rows_int4(w, 1, 32, 16, p, s, "t", z);
    CHECK(s[0] == 0.0f);
    CHECK(s[1] == 1.0f);
    CHECK(z[1] == 0);  // zp −8: the nibble of 0 is 0
    for (int i = 0; i < 16; ++i) CHECK(load_i4(p, uint64_t(16 + i)) + 8 - z[1] == i);
  }
  TempDir d;
  struct Case {
    const char* name;
    bool head;
    int64_t group;
    int i4;
  };
  for (const Case& c : {Case{"gqa_f32", false, 32, 8}, Case{"gqa_f32", true, 32, 9}, Case{"bf16", false, 64, 6}}) {
    CAPTURE(std::string(c.name));
    CAPTURE(c.head);
    const std::string dir = kiln::test::fixture(c.name);
    const std::string file = "reference_int4a_g" + std::to_string(c.group) + (c.head ? "_head" : "") + ".safetensors";
    const auto ref = kiln::test::load_reference(dir, file);
    CompileOptions o = int8_options(dir, d / (std::string(c.name) + file + ".kplan"));
    o.quantize = "int4";
    o.group_size = c.group;
    o.quantize_head = c.head;
    o.asymmetric = true;
    const CompileSummary s = compile_model(o);
    CHECK(s.notes.find("int4 weights (asymmetric, a scale and a zero point per " + std::to_string(c.group) +
                       " values)") != std::string::npos);
    auto plan = load_plan(o.output);
    int i4 = 0;
    for (const TensorInfo& t : plan->tensors()) {
      if (t.dtype != DType::I4) continue;
      ++i4;
      const TensorInfo* zt = nullptr;
      for (const TensorInfo& u : plan->tensors())
        if (u.name == t.name + ".zero") zt = &u;
      REQUIRE(zt != nullptr);
      CHECK(zt->dtype == DType::I8);
      CHECK(zt->shape == std::vector<int64_t>{t.shape[0], t.shape[1] * 2 / c.group});
    }
    CHECK(i4 == c.i4);
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      const auto [logits, err] = kiln::test::check_reference(plan, ref, threads, 1e-4, true);
      const std::string what =
          std::string(c.name) + " asymmetric g" + std::to_string(c.group) + ": rel L2 " + std::to_string(err);
      MESSAGE(what);
    }
  }
  // Refused without int4.
  CompileOptions o = int8_options(kiln::test::fixture("gqa_f32"), d / "bad.kplan");
  o.asymmetric = true;
  kiln::test::check_compile_refused(
      o, "--asymmetric is for --quantize int4 (a zero point per group), not --quantize int8");
}

TEST_CASE("quantize: per-channel fp8 equals compressed-tensors' formula exactly on a fixture's weight") {
  // tools/fixtures_quant.py stored compressed-tensors' float8_e4m3fn codes and (rows, 1) scales of layer 0's q_proj.
  const std::string dir = kiln::test::fixture("gqa_f32");
  auto ref = SafetensorsFile::open(dir + "/reference_fp8.safetensors");
  auto ck = SafetensorsFile::open(dir + "/model.safetensors");
  const StTensor& w = ck->tensors().at("model.layers.0.self_attn.q_proj.weight");
  const StTensor& tq = ref->tensors().at("check_q");
  const StTensor& ts = ref->tensors().at("check_scale");
  const int64_t m = w.shape[0], k = w.shape[1];
  REQUIRE(tq.shape == w.shape);
  REQUIRE(tq.st_dtype == "U8");
  REQUIRE(ts.shape == std::vector<int64_t>{m, 1});
  const std::vector<float> wf = st_f32(w);
  std::vector<uint8_t> codes(static_cast<size_t>(m * k));
  std::vector<float> s(static_cast<size_t>(m));
  quantize_rows_fp8(wf.data(), m, k, k, codes.data(), s.data(), "q_proj");
  CHECK(std::memcmp(s.data(), ts.data, s.size() * 4) == 0);
  CHECK(std::memcmp(codes.data(), tq.data, codes.size()) == 0);
  int at_max = 0;  // each row's largest magnitude is ±448 exactly
  for (uint8_t c : codes) at_max += (c & 0x7f) == 0x7e;
  CHECK(at_max >= m);
}

TEST_CASE("quantize: fp8 zero, tiny and short groups, rounding, and non-finite weights") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  // One row of 40 in groups of 16: zeros and a subnormal (the scale underflows to 0); 448 and values that
  // round; a short last group of 8.
  float w[40] = {};
  w[3] = tiny;
  w[16] = 448.0f;
  w[17] = 1.0625f;   // halfway between 1 and 1.125: to 1 (even)
  w[18] = -1.1875f;  // halfway between 1.125 and 1.25: to 1.25 (even)
  w[19] = 0.001f;    // 0.001: a subnormal code, the nearest multiple of 2^-9 (1 · 2^-9 = 0.00195 is
                     // nearer than 0; 0.001 > 2^-10)
  w[32] = -3.0f;     // the short group: scale 3/448, codes ±448 and 1/3 of it
  w[33] = 1.0f;
  uint8_t q[40];
  float sc[3];
  quantize_rows_fp8(w, 1, 40, 16, q, sc, "t");
  CHECK(sc[0] == 0.0f);
  CHECK(q[3] == 0);
  CHECK(sc[1] == 1.0f);
  CHECK(q[16] == 0x7e);
  CHECK(q[17] == 0x38);
  CHECK(q[18] == 0xba);
  CHECK(q[19] == 0x01);
  CHECK(sc[2] == 3.0f / 448.0f);
  CHECK(q[32] == 0xfe);
  CHECK(f8e4m3_value(q[33]) == 144.0f);  // 149.33 rounds to 144 (steps of 16 from 128)
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    float b[2][16] = {};
    b[1][1] = bad;
    uint8_t q2[32];
    float s2[2];
    CHECK_THROWS_WITH_AS(quantize_rows_fp8(&b[0][0], 2, 16, 16, q2, s2, "layer.w"),
                         doctest::Contains("cannot quantize 'layer.w': row 1 has a non-finite value"), CompileError);
  }
}

TEST_CASE("quantize: fp8 plans match transformers on compressed-tensors' dequantized weights") {
  TempDir d;
  struct Case {
    const char* name;
    bool head;
    int f8_tensors;     // 2 layers × (qkv, o, gate|up, down), and the head
    bool lora = false;  // a LoRA fixture: its adapter merged into its base first (peft's merge in the reference)
  };
  for (const Case& c : {Case{"gqa_f32", false, 8}, Case{"gqa_f32", true, 9}, Case{"tied_f32", true, 9},
                        Case{"bf16", false, 8}, Case{"all_linear_r8", false, 8, true}}) {
    CAPTURE(std::string(c.name));
    CAPTURE(c.head);
    const std::string dir = c.lora ? kiln::test::fixtures_root() + "/lora/" + c.name : kiln::test::fixture(c.name);
    const std::string file = std::string("reference_fp8") + (c.head ? "_head" : "") + ".safetensors";
    const auto ref = kiln::test::load_reference(dir, file);
    const auto plain = kiln::test::load_reference(dir);
    CompileOptions o = int8_options(c.lora ? kiln::test::fixture(kiln::test::read_line(dir + "/base.txt")) : dir,
                                    d / (std::string(c.name) + file + ".kplan"));
    o.quantize = "fp8";
    o.quantize_head = c.head;
    if (c.lora) o.lora = {{dir + "/adapter", 1.0}};
    const CompileSummary s = compile_model(o);
    CHECK(s.notes.find("fp8 weights (e4m3, a scale per row): " + std::to_string(c.f8_tensors) + " matmul weights") !=
          std::string::npos);
    auto plan = load_plan(o.output);
    CHECK_FALSE(plan->has_target("cuda"));
    int f8 = 0;
    for (const TensorInfo& t : plan->tensors()) {
      if (t.dtype != DType::F8E4M3) continue;
      ++f8;
      const TensorInfo* sc = nullptr;
      for (const TensorInfo& u : plan->tensors())
        if (u.name == t.name + ".scale") sc = &u;
      REQUIRE(sc != nullptr);
      CHECK(sc->shape == std::vector<int64_t>{t.shape[0], 1});
    }
    CHECK(f8 == c.f8_tensors);
    // With LoRA, kiln's merge and peft's differ in the last bit of some weights, which could move a value
    // across a rounding boundary of the FP8 grid (int4's exact ties make that certain; FP8 has none at a
    // row's maximum): measured 1e-6 here, as without LoRA, so the same bound and greedy check hold.
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      const auto [logits, err] = kiln::test::check_reference(plan, ref, threads, 1e-4, true);
      CHECK(kiln::test::rel_l2(logits.data(), plain.logits.data(), plain.logits.size()) > 1e-2);  // quantized
      const std::string what = std::string(c.name) + (c.head ? " (head too)" : "") + ": rel L2 " + std::to_string(err);
      MESSAGE(what);
    }
  }
}

TEST_CASE("quantize: bad options and weights are refused with one clear line, and no plan is written") {
  TempDir d;
  const std::string gqa = kiln::test::fixture("gqa_f32");
  struct Case {
    std::string quantize, target, expect;
    bool head = false;
    int64_t group = 0;
  };
  for (const Case& c : {Case{"int7", "", "--quantize 'int7' is not one of int8, int4, fp8, none"},
                        Case{"fp8", "gpu", "--target 'gpu' is not one of cpu, cuda, all"},
                        Case{"fp8", "", "--group-size is for --quantize int4 (not --quantize fp8)", false, 32},
                        Case{"", "", "--quantize-head needs --quantize", true},
                        Case{"int8", "", "--group-size is for --quantize int4", false, 32},
                        Case{"", "", "--group-size is for --quantize int4", false, 64},
                        Case{"int4", "", "--group-size 48 is not a positive multiple of 32", false, 48},
                        Case{"int4", "", "--group-size -32 is not a positive multiple of 32", false, -32},
                        // No weight of the fixture has rows of a whole number of 256-value groups (64 and 160 wide).
                        Case{"int4", "", "--quantize int4: no weight of this model can be quantized (", false, 256}}) {
    CAPTURE(c.quantize);
    CAPTURE(c.group);
    CompileOptions o = int8_options(gqa, d / "bad.kplan");
    o.quantize = c.quantize;
    o.target = c.target;
    o.quantize_head = c.head;
    o.group_size = c.group;
    CHECK(kiln::test::compile_error(o).find(c.expect) != std::string::npos);
    CHECK_FALSE(kiln::path_exists(o.output));
  }
  // CUDA targets (asked for: a quantized plan is for the CPU by default) keep the weights quantized for
  // kiln's quantized CUDA kernels (tests/cuda); --target all keeps the CPU too.
  // (plain variables, not structured bindings: CAPTURE's lambda cannot take those in C++17)
  for (const auto& scheme :
       {std::pair<std::string, DType>{"int8", DType::I8}, {"int4", DType::I4}, {"fp8", DType::F8E4M3}})
    for (const std::string target : {"", "cuda", "all"}) {
      const std::string quantize = scheme.first;
      const DType dtype = scheme.second;
      CAPTURE(quantize);
      CAPTURE(target);
      CompileOptions o = int8_options(gqa, d / ("t" + quantize + target + ".kplan"));
      o.quantize = quantize;
      o.target = target;
      compile_model(o);
      auto plan = Plan::load_file(o.output).take();
      CHECK(plan->has_target("cuda") == !target.empty());
      CHECK(plan->has_target("cpu") == (target != "cuda"));
      int n = 0;
      for (const TensorInfo& t : plan->tensors()) n += t.dtype == dtype;
      CHECK(n == 8);
    }
  // Rows that are not whole blocks of 32 values (a tiny LLaMA's 8 and 12): no int4 weight.
  {
    const std::string tiny = d / "tiny";
    REQUIRE(::mkdir(tiny.c_str(), 0700) == 0);
    kiln::test::write_tiny_llama(tiny);
    CompileOptions o = int8_options(tiny, d / "tiny.kplan");
    o.quantize = "int4";
    kiln::test::check_compile_refused(
        o,
        "--quantize int4: no weight of this model can be quantized (the LM head (--quantize-head quantizes it), 4 "
        "weights whose rows are not a multiple of 32 values (int4 groups))");
  }
  // A text-to-image pipeline.
  CompileOptions o = int8_options(kiln::test::fixture("sd15_tiny", "diffusion") + "/pipeline", d / "sd.kplan", "");
  o.batch = 1;
  o.chunk = 0;
  o.max_seq = 0;
  const std::string sd_err = kiln::test::compile_error(o);
  CHECK_MESSAGE(sd_err.find("--quantize is for LLM checkpoints") != std::string::npos, sd_err);
  CHECK_FALSE(kiln::path_exists(o.output));
  // A NaN and an infinity in a checkpoint weight: named with the row, no plan.
  for (float bad : {std::nanf(""), -std::numeric_limits<float>::infinity()}) {
    const std::string m = d / "nan";
    kiln::test::copy_dir(gqa, m);
    std::vector<std::vector<float>> store;
    std::vector<StWriteTensor> out;
    {
      auto f = SafetensorsFile::open(gqa + "/model.safetensors");
      for (const auto& [name, t] : f->tensors()) {
        store.push_back(st_f32(t));
        // k_proj: the second part of the qkv weight, so the error must name the part and its own row
        if (name == "model.layers.1.self_attn.k_proj.weight") store.back()[size_t(3 * t.shape[1] + 5)] = bad;
        out.push_back({name, DType::F32, t.shape, nullptr, uint64_t(t.numel()) * 4});
      }
    }
    for (size_t i = 0; i < out.size(); ++i) out[i].data = store[i].data();
    write_safetensors(m + "/model.safetensors", out);
    CompileOptions bo = int8_options(m, d / "nan.kplan");
    kiln::test::check_compile_refused(
        bo, "cannot quantize 'model.layers.1.self_attn.k_proj.weight': row 3 has a non-finite value");
    bo.quantize = "int4";
    bo.group_size = 32;
    kiln::test::check_compile_refused(
        bo, "cannot quantize 'model.layers.1.self_attn.k_proj.weight': row 3 has a non-finite value");
    bo.quantize = "fp8";
    bo.group_size = 0;
    kiln::test::check_compile_refused(
        bo, "cannot quantize 'model.layers.1.self_attn.k_proj.weight': row 3 has a non-finite value");
    // Unquantized, the same checkpoint compiles (kiln does not read weight values then).
    bo.quantize = "";
    bo.group_size = 0;
    CHECK(kiln::test::compile_error(bo) == "");
    std::remove(bo.output.c_str());
  }
}

TEST_CASE("quantize: edited int8 plans are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("gqa_f32"), d / "q.kplan");
  const std::vector<uint8_t> bytes = compiled_bytes(o);
  // The prefill program's matmul launches of version 2, by their scale's rows.
  auto v2_launches = [](fb::Plan* p) {
    std::vector<fb::Launch*> out;
    auto* prog = p->mutable_programs()->GetMutableObject(0);
    for (flatbuffers::uoffset_t i = 0; i < prog->launches()->size(); ++i) {
      auto* l = prog->mutable_launches()->GetMutableObject(i);
      const auto* k = p->kernels()->Get(l->kernel());
      if (k->name()->str() == "matmul" && k->version() == 2) out.push_back(l);
    }
    REQUIRE(out.size() >= 2);
    return out;
  };
  auto rows_of = [](fb::Plan* p, uint32_t t) { return p->tensors()->Get(t)->shape()->Get(0); };
  const std::vector<PlanEdit> cases = {
      {"scale dropped", [&](fb::Plan* p) { v2_launches(p)[0]->mutable_inputs()->Mutate(4, kNoTensor); },
       "without their w_scale"},
      {"another matmul's scale",
       [&](fb::Plan* p) {
         auto ls = v2_launches(p);
         for (fb::Launch* l : ls)
           if (rows_of(p, l->inputs()->Get(4)) != rows_of(p, ls[0]->inputs()->Get(4))) {
             ls[0]->mutable_inputs()->Mutate(4, l->inputs()->Get(4));
             return;
           }
         FAIL("no two matmuls with different widths");
       },
       "w_scale"},
      {"the weight as its own scale",
       [&](fb::Plan* p) {
         auto* l = v2_launches(p)[0];
         l->mutable_inputs()->Mutate(4, l->inputs()->Get(1));
       },
       "has dtype i8"},
      {"float weights with a scale",
       [&](fb::Plan* p) {
         // the embedding table (f32, vocab × dim) as the weight of a launch that keeps its scale
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         const uint32_t table = prog->launches()->Get(0)->inputs()->Get(1);
         v2_launches(p)[0]->mutable_inputs()->Mutate(1, table);
       },
       "with float weights"},
      {"kernel version 1 with five operands",
       [&](fb::Plan* p) {
         for (flatbuffers::uoffset_t i = 0; i < p->kernels()->size(); ++i)
           if (p->kernels()->Get(i)->name()->str() == "matmul" && p->kernels()->Get(i)->version() == 2)
             p->mutable_kernels()->GetMutableObject(i)->mutate_version(1);
       },
       "operand or attribute count does not match"},
      {"an i8 weight as bf16",
       [&](fb::Plan* p) {
         p->mutable_tensors()->GetMutableObject(v2_launches(p)[0]->inputs()->Get(1))->mutate_dtype(fb::DType::BF16);
       },
       "size does not match"},
  };
  check_edits_refused(bytes, cases);
}

TEST_CASE("quantize: edited int4 plans are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("gqa_f32"), d / "q4.kplan");
  o.quantize = "int4";
  o.group_size = 32;
  const std::vector<uint8_t> bytes = compiled_bytes(o);
  // The first matmul launch of the prefill program with i4 weights (the fused qkv: 128 rows of k 64).
  auto first_i4 = [](fb::Plan* p) { return first_launch(p, "matmul", 1, fb::DType::I4); };
  const std::vector<PlanEdit> cases = {
      {"scale dropped", [&](fb::Plan* p) { first_i4(p)->mutable_inputs()->Mutate(4, kNoTensor); },
       "i4 weights 'model.layers.0.self_attn.qkv_proj.weight' without their w_scale"},
      {"groups of 16 (the scale reshaped to 64 x 4)",
       [&](fb::Plan* p) {
         auto* sc = tensor_of(p, first_i4(p)->inputs()->Get(4));
         REQUIRE(sc->shape()->Get(0) == 128);
         REQUIRE(sc->shape()->Get(1) == 2);
         sc->mutable_shape()->Mutate(0, 64);
         sc->mutable_shape()->Mutate(1, 4);
       },
       "i4 groups must divide k into whole multiples of 32 values"},
      {"the scale's rows doubled and groups halved (256 x 1 holds the bytes of 128 x 2)",
       [&](fb::Plan* p) {
         auto* sc = tensor_of(p, first_i4(p)->inputs()->Get(4));
         sc->mutable_shape()->Mutate(0, 256);
         sc->mutable_shape()->Mutate(1, 1);
       },
       "w_scale 'model.layers.0.self_attn.qkv_proj.weight.scale' has shape [256, 1], expected [128, 1]"},
      {"an i4 weight read as i8",
       [&](fb::Plan* p) { tensor_of(p, first_i4(p)->inputs()->Get(1))->mutate_dtype(fb::DType::I8); },
       "w 'model.layers.0.self_attn.qkv_proj.weight' has shape [128, 32], expected [128, 64]"},
      {"an i4 weight as bf16",
       [&](fb::Plan* p) { tensor_of(p, first_i4(p)->inputs()->Get(1))->mutate_dtype(fb::DType::BF16); },
       "size does not match"},
  };
  check_edits_refused(bytes, cases);
}

TEST_CASE("quantize: edited asymmetric int4 plans are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("gqa_f32"), d / "q4a.kplan");
  o.quantize = "int4";
  o.group_size = 32;
  o.asymmetric = true;
  const std::vector<uint8_t> bytes = compiled_bytes(o);
  auto first_i4 = [](fb::Plan* p) { return first_launch(p, "matmul", 1, fb::DType::I4); };
  const std::vector<PlanEdit> cases = {
      {"zero points dropped", [&](fb::Plan* p) { first_i4(p)->mutable_inputs()->Mutate(5, kNoTensor); },
       "without their w_scale and w_zero"},
      {"zero points as f32",
       [&](fb::Plan* p) { tensor_of(p, first_i4(p)->inputs()->Get(5))->mutate_dtype(fb::DType::F32); },
       "size does not match"},
      {"zero points reshaped (256 x 1)",
       [&](fb::Plan* p) {
         auto* z = tensor_of(p, first_i4(p)->inputs()->Get(5));
         z->mutable_shape()->Mutate(0, 256);
         z->mutable_shape()->Mutate(1, 1);
       },
       "w_zero 'model.layers.0.self_attn.qkv_proj.weight.zero' has shape [256, 1], expected [128, 2]"},
      {"weights as i8", [&](fb::Plan* p) { tensor_of(p, first_i4(p)->inputs()->Get(1))->mutate_dtype(fb::DType::I8); },
       "matmul version 4 takes i4 weights, not i8"},
  };
  check_edits_refused(bytes, cases);
}

TEST_CASE("quantize: edited fp8 plans are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("gqa_f32"), d / "f8.kplan");
  o.quantize = "fp8";
  const std::vector<uint8_t> bytes = compiled_bytes(o);
  // The first matmul launch of the prefill program with f8e4m3 weights (the fused qkv: 128 rows of k 64).
  auto first_f8 = [](fb::Plan* p) { return first_launch(p, "matmul", 1, fb::DType::F8E4M3); };
  const std::vector<PlanEdit> cases = {
      {"scale dropped", [&](fb::Plan* p) { first_f8(p)->mutable_inputs()->Mutate(4, kNoTensor); },
       "f8e4m3 weights 'model.layers.0.self_attn.qkv_proj.weight' without their w_scale"},
      {"group 0", [&](fb::Plan* p) { first_f8(p)->mutable_int_attrs()->Mutate(1, 0); },
       "in groups of 0 values for k 64"},
      {"group past k", [&](fb::Plan* p) { first_f8(p)->mutable_int_attrs()->Mutate(1, 80); },
       "in groups of 80 values for k 64; a group is a multiple of 16 up to k, or k"},
      {"group 24", [&](fb::Plan* p) { first_f8(p)->mutable_int_attrs()->Mutate(1, 24); }, "in groups of 24 values"},
      {"group -2^63", [&](fb::Plan* p) { first_f8(p)->mutable_int_attrs()->Mutate(1, INT64_MIN); }, "in groups of"},
      {"groups of 16 with one scale a row", [&](fb::Plan* p) { first_f8(p)->mutable_int_attrs()->Mutate(1, 16); },
       "w_scale 'model.layers.0.self_attn.qkv_proj.weight.scale' has shape [128, 1], expected [128, 4]"},
      {"an f8e4m3 weight read as i8",
       [&](fb::Plan* p) { tensor_of(p, first_f8(p)->inputs()->Get(1))->mutate_dtype(fb::DType::I8); },
       "matmul version 3 takes f8e4m3 weights, not i8"},
      {"an f8e4m3 weight under matmul version 2 (no group)",
       [&](fb::Plan* p) {
         for (flatbuffers::uoffset_t i = 0; i < p->kernels()->size(); ++i)
           if (p->kernels()->Get(i)->name()->str() == "matmul" && p->kernels()->Get(i)->version() == 3)
             p->mutable_kernels()->GetMutableObject(i)->mutate_version(2);
       },
       "(matmul): operand or attribute count does not match the kernel"},
      {"an f8e4m3 weight as bf16",
       [&](fb::Plan* p) { tensor_of(p, first_f8(p)->inputs()->Get(1))->mutate_dtype(fb::DType::BF16); },
       "size does not match"},
  };
  check_edits_refused(bytes, cases);
}

// DeepSeek's kv_b rows (head_matmul version 2: W_UK transposed, then W_UV), quantized.
TEST_CASE("quantize: edited plans of quantized kv_b rows are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("v2_greedy_yarn", "deepseek"), d / "kvb4.kplan");
  o.quantize = "int4";
  o.group_size = 32;
  auto first_hm = [](fb::Plan* p) { return first_launch(p, "head_matmul"); };
  const std::vector<PlanEdit> cases = {
      {"transposed 2", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(1, 2); },
       "transposed must be 0 or 1"},
      {"heads 0", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(0, 0); }, "heads 0 out of range"},
      {"heads not dividing the rows", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(0, 1000003); },
       "not a multiple of 1000003 heads"},
      {"not transposed (x no longer fits)", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(1, 0); },
       "x '"},
      {"scales dropped", [&](fb::Plan* p) { first_hm(p)->mutable_inputs()->Mutate(3, kNoTensor); }, "without w_scale"},
      {"group 0", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(2, 0); }, "in groups of 0"},
      {"group 64 (rows of 32)", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(2, 64); },
       "in groups of 64 for rows of 32"},
      {"zero points of f32",
       [&](fb::Plan* p) { first_hm(p)->mutable_inputs()->Mutate(4, first_hm(p)->inputs()->Get(3)); }, "w_zero"},
      {"weights as i8 (16 bytes a row either way)",
       [&](fb::Plan* p) { tensor_of(p, first_hm(p)->inputs()->Get(1))->mutate_dtype(fb::DType::I8); },
       "i8 w 'model.layers.0.self_attn.w_uk.weight' with a group"},
      {"weights as bf16",
       [&](fb::Plan* p) { tensor_of(p, first_hm(p)->inputs()->Get(1))->mutate_dtype(fb::DType::BF16); },
       "size does not match"},
  };
  check_edits_refused(compiled_bytes(o), cases);
  o.quantize = "int8";
  o.group_size = 0;
  o.output = d / "kvb8.kplan";
  check_edits_refused(
      compiled_bytes(o),
      {{"an i8 group", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(2, 32); }, "with a group"},
       {"i8 zero points", [&](fb::Plan* p) { first_hm(p)->mutable_inputs()->Mutate(4, first_hm(p)->inputs()->Get(3)); },
        "asymmetric i4 only"}});
  o.quantize = "fp8";
  o.output = d / "kvb_f8.kplan";
  check_edits_refused(
      compiled_bytes(o),
      {{"group 24", [&](fb::Plan* p) { first_hm(p)->mutable_int_attrs()->Mutate(2, 24); }, "in groups of 24"}});
  // Rows --quantize leaves in the plan dtype (int4 groups of 64: kv_b's rows are 32 values) stay float
  // version 2 launches (bf16 here, widened into the launch's scratch), which run near the reference;
  // scales added to them are refused.
  const std::string dir = kiln::test::fixture("v2_greedy_yarn", "deepseek");
  o = int8_options(dir, d / "kvb_bf16.kplan", "bf16");
  o.quantize = "int4";
  o.group_size = 64;
  const CompileSummary s = compile_model(o);
  CHECK(s.notes.find("weights whose rows are not a whole number of int4 groups (--group-size 64)") !=
        std::string::npos);
  auto plan = load_plan(o.output);
  int bf16_v2 = 0;
  for (const ProgramInfo& p : plan->programs())
    for (const LaunchInfo& l : p.launches) {
      const OpDef* k = plan->kernels()[l.kernel];
      bf16_v2 += std::string(k->name) == "head_matmul" && k->version == 2 &&
                 plan->tensors()[l.inputs[1]].dtype == DType::BF16 && l.inputs[3] == kNoTensor;
    }
  CHECK(bf16_v2 > 0);
  const auto ref = kiln::test::load_reference(dir);
  auto ctx = Context::create(plan, {}).take();
  std::vector<float> logits(ref.logits.size(), std::nanf(""));
  REQUIRE(ctx->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
  CHECK(kiln::test::rel_l2(logits.data(), ref.logits.data(), ref.logits.size()) <= 0.5);
  auto scales_for_bf16 = [&](fb::Plan* p) {
    for (flatbuffers::uoffset_t i = 0; i < p->tensors()->size(); ++i)
      if (p->tensors()->Get(i)->name()->str().find(".scale") != std::string::npos) {
        first_hm(p)->mutable_inputs()->Mutate(3, i);
        return;
      }
    FAIL("no scale tensor");
  };
  check_edits_refused(kiln::test::read_bytes(o.output),
                      {{"scales for bf16 rows", scales_for_bf16, "float head_matmul weights"}});
}

TEST_CASE("quantize: edited plans of quantized MoE experts are refused by the verifier behind valid checksums") {
  TempDir d;
  CompileOptions o = int8_options(kiln::test::fixture("top2_f32", "mixtral"), d / "moe4.kplan");
  o.quantize = "int4";
  o.group_size = 32;
  const std::vector<uint8_t> bytes = compiled_bytes(o);
  auto first_moe = [](fb::Plan* p) { return first_launch(p, "moe_experts"); };
  const std::vector<PlanEdit> cases = {
      {"gate|up scales dropped", [&](fb::Plan* p) { first_moe(p)->mutable_inputs()->Mutate(6, kNoTensor); },
       "without gu_scale"},
      {"gate|up weights dropped", [&](fb::Plan* p) { first_moe(p)->mutable_inputs()->Mutate(3, kNoTensor); },
       "missing operand w_gu"},
      {"down group 0", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(1, 0); }, "in groups of 0"},
      {"gate|up group 64 (the scales say 32)", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(0, 64); },
       "gu_scale"},
      {"down weights as i8",
       [&](fb::Plan* p) { tensor_of(p, first_moe(p)->inputs()->Get(4))->mutate_dtype(fb::DType::I8); },
       "w_down's dtype is not w_gu's"},
      {"both as bf16",
       [&](fb::Plan* p) {
         tensor_of(p, first_moe(p)->inputs()->Get(3))->mutate_dtype(fb::DType::BF16);
         tensor_of(p, first_moe(p)->inputs()->Get(4))->mutate_dtype(fb::DType::BF16);
       },
       "size does not match"},
  };
  check_edits_refused(bytes, cases);
  // fp8 experts (one scale a row: group = k) and int8 ones.
  o.quantize = "fp8";
  o.group_size = 0;
  o.output = d / "moe8.kplan";
  const std::vector<PlanEdit> fp8_cases = {
      {"gate|up group 24", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(0, 24); }, "in groups of 24"},
      {"down group past k", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(1, 1 << 20); },
       "in groups of 1048576"},
      {"down group 16 with one scale a row", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(1, 16); },
       "down_scale"},
  };
  check_edits_refused(compiled_bytes(o), fp8_cases);
  o.quantize = "int8";
  o.output = d / "moe_i8.kplan";
  check_edits_refused(
      compiled_bytes(o),
      {{"an i8 group", [&](fb::Plan* p) { first_moe(p)->mutable_int_attrs()->Mutate(0, 32); }, "with a group"}});
  // Asymmetric int4 experts (version 3): their zero points.
  o.quantize = "int4";
  o.group_size = 32;
  o.asymmetric = true;
  o.output = d / "moe4a.kplan";
  const std::vector<PlanEdit> asym_cases = {
      {"gate|up zero points dropped", [&](fb::Plan* p) { first_moe(p)->mutable_inputs()->Mutate(8, kNoTensor); },
       "without their gu_zero"},
      {"gate|up weights dropped", [&](fb::Plan* p) { first_moe(p)->mutable_inputs()->Mutate(3, kNoTensor); },
       "missing operand w_gu"},
      {"down weights as i8",
       [&](fb::Plan* p) { tensor_of(p, first_moe(p)->inputs()->Get(4))->mutate_dtype(fb::DType::I8); },
       "moe_experts version 3 takes i4 weights, not i8 ('model.layers.0.mlp.experts.down"},
      {"down zero points as the gate|up ones",
       [&](fb::Plan* p) { first_moe(p)->mutable_inputs()->Mutate(9, first_moe(p)->inputs()->Get(8)); }, "down_zero"},
      {"i8 experts with zero points",
       [&](fb::Plan* p) {
         tensor_of(p, first_moe(p)->inputs()->Get(3))->mutate_dtype(fb::DType::I8);
         tensor_of(p, first_moe(p)->inputs()->Get(4))->mutate_dtype(fb::DType::I8);
       },
       "moe_experts version 3 takes i4 weights, not i8"},
  };
  check_edits_refused(compiled_bytes(o), asym_cases);
}

// Families whose references are unquantized only: an int8 plan must compile, say what it left in the
// plan dtype, and stay near transformers' unquantized logits (int8 moves the LLaMA fixtures' logits
// by 2-2.5%, see the case above; these by 1.4-2.2%).
TEST_CASE(
    "quantize: DeepSeek (MLA, MoE), Mixtral, Qwen2-MoE, GPT-OSS, FlexOlmo and Gemma 3 int8, int4 and fp8 plans run "
    "near the unquantized logits") {
  TempDir d;
  struct Case {
    const char *family, *name, *kept, *scheme;
    double bound;
  };
  for (const Case& c : {Case{"deepseek", "v2_greedy_yarn", "left in f32: the LM head (", "int8", 0.1},
                        Case{"mixtral", "top2_f32", "the LM head", "int8", 0.1},
                        Case{"gemma3", "pattern_f32", "the LM head", "int8", 0.1},
                        // int4 moves these by 0.27-0.35, as it moves the LLaMA fixtures (0.25-0.33) whose
                        // int4 references above pin the quantization itself
                        Case{"deepseek", "v2_greedy_yarn", "left in f32: the LM head (", "int4", 0.5},
                        Case{"mixtral", "top2_f32", "the LM head", "int4", 0.5},
                        Case{"gemma3", "pattern_f32", "the LM head", "int4", 0.5},
                        // fp8 moves the LLaMA fixtures by 0.08-0.10 (reference_fp8 above)
                        Case{"deepseek", "v2_greedy_yarn", "left in f32: the LM head (", "fp8", 0.2},
                        Case{"mixtral", "top2_f32", "the LM head", "fp8", 0.2},
                        Case{"gemma3", "pattern_f32", "the LM head", "fp8", 0.2},
                        // Qwen2-MoE's shared expert is quantized, its gate (one row) kept as the routers
                        Case{"qwen2_moe", "shared_f32", "a gate (Qwen2-MoE's shared_expert_gate", "int8", 0.1},
                        Case{"qwen2_moe", "shared_f32", "a gate (Qwen2-MoE's shared_expert_gate", "int4", 0.5},
                        Case{"qwen2_moe", "shared_f32", "a gate (Qwen2-MoE's shared_expert_gate", "fp8", 0.2},
                        // GPT-OSS's experts (transposed and deinterleaved from the checkpoint) quantized too
                        Case{"gpt_oss", "sinks_f32", "the LM head", "int8", 0.1},
                        Case{"gpt_oss", "sinks_f32", "the LM head", "int4", 0.5},
                        Case{"gpt_oss", "sinks_f32", "the LM head", "fp8", 0.2},
                        // FlexOlmo's experts write their sum (moe_experts version 5, its scales in their places)
                        Case{"flex_olmo", "top2_bias_f32", "the LM head", "int8", 0.1},
                        Case{"flex_olmo", "top2_bias_f32", "the LM head", "int4", 0.5},
                        Case{"flex_olmo", "top2_bias_f32", "the LM head", "fp8", 0.2},
                        // DBRX's experts: gate|up joined from w1 and v1, down transposed from w2 (moved, quantized)
                        Case{"dbrx", "mqa_nonorm_yarn_f32", "the LM head", "int8", 0.1},
                        Case{"dbrx", "mqa_nonorm_yarn_f32", "the LM head", "int4", 0.5},
                        Case{"dbrx", "mqa_nonorm_yarn_f32", "the LM head", "fp8", 0.2}}) {
    CAPTURE(std::string(c.name));
    CAPTURE(std::string(c.scheme));
    const std::string dir = kiln::test::fixture(c.name, c.family);
    const auto ref = kiln::test::load_reference(dir);
    CompileOptions o = int8_options(dir, d / (std::string(c.name) + c.scheme + ".kplan"));
    o.quantize = c.scheme;
    const CompileSummary s = compile_model(o);
    CHECK_MESSAGE(s.notes.find(c.kept) != std::string::npos, s.notes);
    // DeepSeek's MLA q and kv_a projections (their rows split and reordered) are quantized like the rest.
    CHECK(s.notes.find("computed by the compiler") == std::string::npos);
    auto plan = load_plan(o.output);
    const DType qt = std::string(c.scheme) == "int8"   ? DType::I8
                     : std::string(c.scheme) == "int4" ? DType::I4
                                                       : DType::F8E4M3;
    int i8 = 0, shared = 0;
    for (const TensorInfo& t : plan->tensors()) {
      i8 += t.dtype == qt;
      if (t.name == "model.layers.0.mlp.shared_expert_gate.weight") shared += 1 + (t.dtype == DType::F32);
      if (t.name == "model.layers.0.mlp.shared_expert.gate_up_proj.weight") shared += 10 + 10 * (t.dtype == qt);
    }
    CHECK(i8 > 0);
    // Qwen2-MoE: its shared expert's gate kept in f32, the shared expert quantized (both found).
    CHECK(shared == (std::string(c.family) == "qwen2_moe" ? 22 : 0));
    // DeepSeek's, Mixtral's, GPT-OSS's, FlexOlmo's and DBRX's routed experts are quantized too (moe_experts version 2;
    // GPT-OSS's version 4 and FlexOlmo's version 5 with the scales in their places, FlexOlmo's accumulate 0 kept).
    const std::string fam = c.family;
    const uint32_t moe_version = fam == "gpt_oss" ? 4u : fam == "flex_olmo" ? 5u : 2u;
    int moe_q = 0;
    for (const ProgramInfo& p : plan->programs())
      for (const LaunchInfo& l : p.launches)
        moe_q += std::string(plan->kernels()[l.kernel]->name) == "moe_experts" &&
                 plan->kernels()[l.kernel]->version == moe_version && plan->tensors()[l.inputs[3]].dtype == qt &&
                 l.inputs[6] != kNoTensor && (moe_version != 5 || l.int_attrs[3] == 0);
    CHECK((moe_q > 0) == (std::string(c.family) != "gemma3"));
    auto ctx = Context::create(plan, {}).take();
    std::vector<float> logits(ref.logits.size(), std::nanf(""));
    REQUIRE(ctx->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
    const double err = kiln::test::rel_l2(logits.data(), ref.logits.data(), ref.logits.size());
    CHECK(err > 1e-4);  // quantized
    CHECK(err <= c.bound);
    MESSAGE(std::string(c.name) << ": " << i8 << " " << std::string(dtype_name(qt)) << " tensors, rel L2 " << err
                                << " from the unquantized logits; " << s.notes);
  }
  // Asymmetric int4 (--asymmetric): the routed experts too, as moe_experts version 3 with their zero
  // points, near the unquantized logits as symmetric int4 is (and not equal to it).
  for (const auto& fixture :
       {std::pair<const char*, const char*>{"deepseek", "v2_greedy_yarn"}, {"mixtral", "top2_f32"}}) {
    const char *family = fixture.first, *name = fixture.second;
    CAPTURE(std::string(name));
    const std::string dir = kiln::test::fixture(name, family);
    const auto ref = kiln::test::load_reference(dir);
    CompileOptions o = int8_options(dir, d / (std::string(name) + "_asym.kplan"));
    o.quantize = "int4";
    o.asymmetric = true;
    const CompileSummary s = compile_model(o);
    CHECK(s.notes.find("MoE experts") == std::string::npos);
    auto plan = load_plan(o.output);
    int moe_v3 = 0;
    for (const ProgramInfo& p : plan->programs())
      for (const LaunchInfo& l : p.launches)
        moe_v3 +=
            std::string(plan->kernels()[l.kernel]->name) == "moe_experts" && plan->kernels()[l.kernel]->version == 3;
    CHECK(moe_v3 > 0);
    auto ctx = Context::create(plan, {}).take();
    std::vector<float> logits(ref.logits.size(), std::nanf(""));
    REQUIRE(ctx->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
    const double err = kiln::test::rel_l2(logits.data(), ref.logits.data(), ref.logits.size());
    CHECK(err > 1e-4);
    CHECK(err <= 0.5);
    const std::string line = std::string(name) + " asymmetric int4: rel L2 " + std::to_string(err) +
                             " from the unquantized logits; " + s.notes;
    MESSAGE(line);
  }
  // For CUDA too (--target all): the experts stay quantized (moe_experts version 2, or 3 asymmetric, which
  // tests/cuda runs on a GPU), and the plan's CPU run gives the CPU-only plan's logits bit for bit (the
  // ops fused for CUDA run their parts in order on the CPU).
  for (const auto& fixture :
       {std::pair<const char*, const char*>{"deepseek", "v2_greedy_yarn"}, {"mixtral", "top2_f32"}})
    for (const std::string scheme : {"int8", "int4", "int4 asymmetric", "fp8"}) {
      const char *family = fixture.first, *name = fixture.second;
      CAPTURE(std::string(name));
      CAPTURE(scheme);
      const std::string dir = kiln::test::fixture(name, family);
      const auto ref = kiln::test::load_reference(dir);
      std::vector<std::vector<float>> logits;
      for (const std::string target : {"cpu", "all"}) {
        CompileOptions o = int8_options(dir, d / (std::string(name) + scheme + target + ".kplan"));
        o.quantize = scheme.substr(0, 4) == "int4" ? "int4" : scheme;
        o.asymmetric = scheme == "int4 asymmetric";
        o.target = target;
        compile_model(o);
        auto plan = load_plan(o.output);
        CHECK(plan->has_target("cuda") == (target == "all"));
        int moe_q = 0;
        for (const ProgramInfo& p : plan->programs())
          for (const LaunchInfo& l : p.launches)
            moe_q += std::string(plan->kernels()[l.kernel]->name) == "moe_experts" &&
                     plan->kernels()[l.kernel]->version == (o.asymmetric ? 3u : 2u);
        CHECK(moe_q > 0);
        auto ctx = Context::create(plan, {}).take();
        logits.emplace_back(ref.logits.size(), std::nanf(""));
        REQUIRE(ctx->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.back().data()).is_ok());
      }
      CHECK(logits[0] == logits[1]);
    }
}

// LoRA merging against peft: every fixture under tests/fixtures/lora (made by
// tools/make_fixtures.py with peft's merge_and_unload) must match in f32 with identical greedy
// tokens; bad adapters each get their own clear error and no plan.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/compile.h"
#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "runtime/context.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

std::string lora_fixture(const std::string& name) { return kiln::test::fixtures_root() + "/lora/" + name; }

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// The adapters of a fixture: weights.txt ("folder weight" lines) or the single folder "adapter".
std::vector<LoraAdapterSpec> fixture_adapters(const std::string& dir) {
  std::vector<LoraAdapterSpec> specs;
  std::ifstream in(dir + "/weights.txt");
  std::string name;
  double w;
  while (in >> name >> w) specs.push_back({dir + "/" + name, w});
  if (specs.empty()) specs.push_back({dir + "/adapter", 1.0});
  return specs;
}

CompileOptions options(const std::string& base, std::vector<LoraAdapterSpec> lora, const std::string& out) {
  CompileOptions o;
  o.model_dir = kiln::test::fixture(base);
  o.output = out;
  o.dtype = "f32";
  o.max_seq = 64;
  o.chunk = 8;
  o.lora = std::move(lora);
  return o;
}

// A copy of the all_linear_r8 adapter (or `src`'s) whose config is edited by `edit`.
std::string edited_adapter(const TempDir& d, const std::string& name, void (*edit)(nlohmann::json&),
                           const std::string& src = "all_linear_r8") {
  const std::string dir = d / name;
  kiln::test::copy_dir(lora_fixture(src) + "/adapter", dir);
  std::ifstream in(dir + "/adapter_config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::ofstream(dir + "/adapter_config.json") << j.dump(2);
  return dir;
}

// A copy of a fixture's f32 adapter whose tensor `name` has a NaN at `at`.
std::string adapter_with_nan(const TempDir& d, const std::string& folder, const std::string& fixture_dir,
                             const std::string& name, size_t at) {
  const std::string dir = d / folder;
  kiln::test::copy_dir(fixture_dir + "/adapter", dir);
  auto src = SafetensorsFile::open(dir + "/adapter_model.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<StWriteTensor> ts;
  data.reserve(src->tensors().size());
  for (const auto& [n, t] : src->tensors()) {
    REQUIRE(t.dtype == DType::F32);
    data.emplace_back(size_t(t.size / 4));
    std::memcpy(data.back().data(), t.data, size_t(t.size));
    if (n == name) data.back().at(at) = NAN;
    ts.push_back({n, t.dtype, t.shape, data.back().data(), t.size});
  }
  write_safetensors(dir + "/adapter_model.safetensors.new", ts);
  std::rename((dir + "/adapter_model.safetensors.new").c_str(), (dir + "/adapter_model.safetensors").c_str());
  return dir;
}

// generate() on ctx continues the reference's prompt with its greedy tokens.
void check_greedy(Context& ctx, const kiln::test::Reference& ref) {
  const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
  std::vector<int32_t> out(static_cast<size_t>(n_new));
  int64_t n = 0;
  REQUIRE(ctx.generate(ref.prompt_ids.data(), int64_t(ref.prompt_ids.size()), n_new, SamplingParams{}, -1, out.data(),
                       &n, nullptr)
              .is_ok());
  CHECK(std::equal(out.begin(), out.end(), ref.greedy_ids.begin() + long(ref.prompt_ids.size())));
}

// Compiles o and returns the rel L2 of its logits (every position) from fixture dir's reference.
double compiled_rel_l2(const CompileOptions& o, const std::string& dir) {
  compile_model(o);
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  auto ctx = Context::create(plan.value(), ContextOptions{});
  REQUIRE(ctx.is_ok());
  const auto ref = kiln::test::load_reference(dir);
  std::vector<float> logits(ref.logits.size());
  REQUIRE(ctx.value()->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
  return kiln::test::rel_l2(logits.data(), ref.logits.data(), logits.size());
}

}  // namespace

// (tied_embedding's reference is peft's unmerged model: a LoRA on a tied embedding adapts the
// embedding only there, where merge_and_unload would change the head too; tools/make_fixtures.py)
TEST_CASE("lora: every peft fixture matches peft's model in f32 (logits and greedy tokens)") {
  const std::vector<std::string> cases = {"all_linear_r8",   "rslora_qv",
                                          "rank_pattern",    "two_adapters",
                                          "embedding",       "dora",
                                          "layer_selection", "tied_saved_embedding",
                                          "tied_saved_head", "tied_ensure_tying",
                                          "tied_embedding",  "tied_embedding_tying",
                                          "saved_norms"};
  TempDir d;
  for (const std::string& name : cases) {
    CAPTURE(name);
    const std::string dir = lora_fixture(name);
    REQUIRE(exists(dir + "/reference.safetensors"));
    const std::string base = kiln::test::read_line(dir + "/base.txt");
    const CompileOptions o = options(base, fixture_adapters(dir), d / (name + ".kplan"));
    const CompileSummary s = compile_model(o);
    CHECK(s.adapters.size() == o.lora.size());
    CHECK((s.notes.find("adapts the tied embedding without ensure_weight_tying") != std::string::npos) ==
          (name == "tied_embedding"));
    auto plan = Plan::load_file(o.output);
    REQUIRE(plan.is_ok());
    REQUIRE(plan.value()->adapters().size() == o.lora.size());
    for (size_t i = 0; i < o.lora.size(); ++i) CHECK(plan.value()->adapters()[i].weight == o.lora[i].weight);
    auto ctx = Context::create(plan.value(), ContextOptions{});
    REQUIRE(ctx.is_ok());
    const auto ref = kiln::test::load_reference(dir);
    std::vector<float> logits(ref.logits.size());
    REQUIRE(ctx.value()->score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data()).is_ok());
    const double err = kiln::test::rel_l2(logits.data(), ref.logits.data(), logits.size());
    CHECK(err <= 1e-4);
    // The adapter really changed the model: the base's own logits are far from the merged ones.
    const auto base_ref = kiln::test::load_reference(kiln::test::fixture(base));
    CHECK(kiln::test::rel_l2(base_ref.logits.data(), ref.logits.data(), logits.size()) > 1e-2);
    check_greedy(*ctx.value(), ref);
    MESSAGE(name << ": rel L2 " << err);
  }
}

// A saved copy of a GPT-2 Conv1D layer is [in, out], as the checkpoint's: one stored [out, in] (a Linear's layout) is
// refused, naming both shapes as the checkpoint holds them.
TEST_CASE("lora: a saved copy of a GPT-2 Conv1D layer in a Linear's layout is refused") {
  TempDir d;
  const std::string src = kiln::test::fixtures_root() + "/gpt2_lora/saved_conv1d/adapter";
  const std::string dir = d / "adapter";
  kiln::test::copy_dir(src, dir);
  auto f = SafetensorsFile::open(src + "/adapter_model.safetensors");
  std::vector<StWriteTensor> ts;
  for (const auto& [n, t] : f->tensors()) {
    std::vector<int64_t> shape = t.shape;
    if (n == "base_model.model.transformer.h.1.mlp.c_fc.weight") std::swap(shape[0], shape[1]);
    ts.push_back({n, t.dtype, shape, t.data, t.size});
  }
  write_safetensors(dir + "/adapter_model.safetensors", ts);
  CompileOptions o = options("", {{dir, 1.0}}, d / "p.kplan");
  o.model_dir = kiln::test::fixture("layer_scaled_f32", "gpt2");
  CHECK_THROWS_WITH_AS(compile_model(o),
                       doctest::Contains("saved module tensor 'transformer.h.1.mlp.c_fc.weight' has shape [256, 64] "
                                         "but the model's is [64, 256] (as the checkpoint holds it)"),
                       CompileError);
  CHECK_FALSE(exists(d / "p.kplan"));
}

// BLOOM with slow_but_exact and pretraining_tp > 1 multiplies by dense's and dense_4h_to_h's weights itself: peft's
// model leaves an adapter on them out while merge_and_unload does not, so kiln refuses one rather than pick; with
// slow_but_exact false the same adapter compiles.
TEST_CASE("lora: an adapter on BLOOM's sliced output projections (slow_but_exact) is refused") {
  TempDir d;
  const std::string src = kiln::test::fixtures_root() + "/bloom_lora/qkv_mlp_embed_norm/adapter";
  const std::string dir = d / "adapter";
  kiln::test::copy_dir(src, dir);
  auto f = SafetensorsFile::open(src + "/adapter_model.safetensors");
  std::vector<StWriteTensor> ts;
  const std::string qkv = "base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.weight";
  const std::string dense = "base_model.model.transformer.h.0.self_attention.dense.";
  const std::vector<float> b = kiln::test::random_floats(96 * 8, 7);
  for (const auto& [n, t] : f->tensors()) {
    ts.push_back({n, t.dtype, t.shape, t.data, t.size});
    if (n == qkv) ts.push_back({dense + "lora_A.weight", t.dtype, t.shape, t.data, t.size});  // ([8, 96])
  }
  REQUIRE(ts.size() == f->tensors().size() + 1);
  ts.push_back({dense + "lora_B.weight", DType::F32, {96, 8}, b.data(), b.size() * 4});
  write_safetensors(dir + "/adapter_model.safetensors", ts);
  {
    std::ifstream in(dir + "/adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["target_modules"].push_back("dense");
    std::ofstream(dir + "/adapter_config.json") << j.dump(2);
  }
  CompileOptions o = options("", {{dir, 1.0}}, d / "p.kplan");
  o.model_dir = kiln::test::fixture("six_heads_f32", "bloom");
  CHECK_THROWS_WITH_AS(compile_model(o),
                       doctest::Contains("slow_but_exact with pretraining_tp > 1 makes transformers' BLOOM multiply "
                                         "by transformer.h.0.self_attention.dense's weights itself"),
                       CompileError);
  CHECK_FALSE(exists(d / "p.kplan"));
  kiln::test::copy_dir(o.model_dir, d / "exact");
  {
    std::ifstream in(d / "exact/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["slow_but_exact"] = false;
    std::ofstream(d / "exact/config.json") << j.dump(2);
  }
  o.model_dir = d / "exact";
  compile_model(o);
  CHECK(exists(d / "p.kplan"));
}

// GPT-NeoX: kiln renames the checkpoint's modules (gpt_neox.layers.<i>.attention.query_key_value is its
// model.layers.<i>.self_attn.qkv_proj, each head's q, k and v rows regrouped); adapters, their target_modules,
// patterns and modules_to_save name peft's (transformers 5's) modules, and so do kiln's messages. References by
// peft (tests/fixtures/gpt_neox_lora, tools/make_fixtures.py --only gpt_neox). (Apertus's act_fn_saved: the saved
// xIELU activations' parameters, read in place of the checkpoint's.)
TEST_CASE(
    "lora: GPT-NeoX, Falcon, GPT-J, GPT-2, GPT-Neo, GPT-BigCode, BLOOM, MPT, OPT, GLM, OLMo, Ministral 3, EXAONE 3, InternLM3, Apertus, Phi-3.5-MoE, Jais 2, GLM-4.7-Flash, Youtu-LLM, MiniMax-M2 and nanochat adapters (peft's names for their renamed modules, GPT-2's Conv1D layers and their saved copies, Apertus's saved activations) match peft's model") {
  TempDir d;
  auto family_options = [&](const std::string& family, const std::string& dir, const std::vector<LoraAdapterSpec>& lora,
                            const std::string& out) {
    CompileOptions o = options("", lora, out);
    o.model_dir = kiln::test::fixture(kiln::test::read_line(dir + "/base.txt"), family);
    return o;
  };
  auto neox_options = [&](const std::string& dir, const std::vector<LoraAdapterSpec>& lora, const std::string& out) {
    return family_options("gpt_neox", dir, lora, out);
  };
  const std::string root = kiln::test::fixtures_root() + "/gpt_neox_lora/";
  // (Falcon's: query_key_value in k/v groups, ln_attn and the final norm saved)
  for (const auto& fam_name : std::vector<std::pair<std::string, std::string>>{{"gpt_neox", "every_linear"},
                                                                               {"gpt_neox", "saved_head_norm"},
                                                                               {"gpt_neox", "tied_embedding"},
                                                                               {"falcon", "every_linear_norms"},
                                                                               {"gptj", "attn_mlp_saved"},
                                                                               {"gpt2", "conv1d_saved"},
                                                                               {"gpt2", "c_attn_head"},
                                                                               {"gpt2", "saved_conv1d"},
                                                                               {"opt", "attn_fc1_norms"},
                                                                               {"gpt_neo", "attn_mlp_saved"},
                                                                               {"gpt_bigcode", "every_linear_norm"},
                                                                               {"gpt_bigcode", "mqa_c_attn"},
                                                                               {"bloom", "qkv_mlp_embed_norm"},
                                                                               {"mpt", "every_linear_norm"},
                                                                               {"dbrx", "attn_router_norm"},
                                                                               {"glm", "qvo_gate_up_norm"},
                                                                               {"olmo", "every_linear_clip"},
                                                                               {"ministral3", "attn_mlp"},
                                                                               {"exaone", "every_linear_norm"},
                                                                               {"exaone", "qkv_hub_names"},
                                                                               {"internlm3", "every_linear"},
                                                                               {"apertus", "every_linear"},
                                                                               {"apertus", "act_fn_saved"},
                                                                               {"phimoe", "attn_head"},
                                                                               {"jais2", "every_linear_norm"},
                                                                               {"glm4_moe_lite", "mla_norm"},
                                                                               {"youtu", "every_linear"},
                                                                               {"minimax_m2", "attn_head_qk_norms"},
                                                                               {"nanochat", "every_linear_head"}}) {
    const std::string family = fam_name.first, name = fam_name.second;  // (CAPTURE cannot take a binding)
    CAPTURE(name);
    const std::string dir = kiln::test::fixtures_root() + "/" + family + "_lora/" + name;
    const CompileOptions o = family_options(family, dir, fixture_adapters(dir), d / (name + ".kplan"));
    const double err = compiled_rel_l2(o, dir);
    CHECK(err <= 1e-4);
    MESSAGE(name << ": rel L2 " << err);
    const auto ref = kiln::test::load_reference(dir);
    const auto base_ref = kiln::test::load_reference(o.model_dir);
    CHECK(kiln::test::rel_l2(base_ref.logits.data(), ref.logits.data(), ref.logits.size()) > 1e-2);
    auto plan = Plan::load_file(o.output);
    REQUIRE(plan.is_ok());
    auto ctx = Context::create(plan.value(), ContextOptions{});
    REQUIRE(ctx.is_ok());
    check_greedy(*ctx.value(), ref);
  }
  // An EXAONE adapter under the hub's names (peft renames its LoRA tensors as it loads them) whose target_modules leave
  // out a module it has tensors for: peft wraps no such module and drops them; kiln refuses, naming it as peft does.
  {
    const std::string dir = kiln::test::fixtures_root() + "/exaone_lora/qkv_hub_names";
    const std::string qk = d / "exaone_qk";
    kiln::test::copy_dir(dir + "/adapter", qk);
    std::ifstream in(qk + "/adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["target_modules"] = {"q_proj", "k_proj"};
    std::ofstream(qk + "/adapter_config.json") << j.dump(2);
    CHECK_THROWS_WITH_AS(compile_model(family_options("exaone", dir, {{qk, 1.0}}, d / "qk.kplan")),
                         doctest::Contains("module 'model.layers.0.self_attn.v_proj': the adapter has LoRA tensors "
                                           "for it, but"),
                         CompileError);
  }
  // The hub's head name (embed_out, which transformers 5 holds as lm_head) in an adapter: peft on transformers 5
  // finds no such module and leaves the saved copy unread; kiln refuses it by its name.
  const std::string dir = root + "saved_head_norm";
  {
    const std::string old = d / "old_names";
    kiln::test::copy_dir(dir + "/adapter", old);
    auto src = SafetensorsFile::open(old + "/adapter_model.safetensors");
    std::vector<StWriteTensor> ts;
    for (const auto& [n, t] : src->tensors())
      ts.push_back({n == "base_model.model.lm_head.weight" ? "base_model.model.embed_out.weight" : n, t.dtype, t.shape,
                    t.data, t.size});
    write_safetensors(old + "/adapter_model.safetensors.new", ts);
    src.reset();
    std::rename((old + "/adapter_model.safetensors.new").c_str(), (old + "/adapter_model.safetensors").c_str());
    std::ifstream in(old + "/adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["modules_to_save"] = {"embed_out", "final_layer_norm"};
    std::ofstream(old + "/adapter_config.json") << j.dump(2);
    CHECK_THROWS_WITH_AS(compile_model(neox_options(dir, {{old, 1.0}}, d / "old.kplan")),
                         doctest::Contains("saved module tensor 'embed_out.weight' is not in the model"), CompileError);
    CHECK_FALSE(exists(d / "old.kplan"));
    // a LoRA on embed_out likewise (peft on transformers 5 leaves lm_head a plain Linear)
    const std::string lora_old = d / "lora_old";
    kiln::test::copy_dir(root + "every_linear/adapter", lora_old);
    auto every = SafetensorsFile::open(lora_old + "/adapter_model.safetensors");
    std::vector<StWriteTensor> with_head;
    for (const auto& [n, t] : every->tensors()) with_head.push_back({n, t.dtype, t.shape, t.data, t.size});
    const std::vector<float> a(size_t(8 * 64), 0.01f), b(size_t(256 * 8), 0.01f);
    with_head.push_back({"base_model.model.embed_out.lora_A.weight", DType::F32, {8, 64}, a.data(), a.size() * 4});
    with_head.push_back({"base_model.model.embed_out.lora_B.weight", DType::F32, {256, 8}, b.data(), b.size() * 4});
    write_safetensors(lora_old + "/adapter_model.safetensors.new", with_head);
    every.reset();
    std::rename((lora_old + "/adapter_model.safetensors.new").c_str(),
                (lora_old + "/adapter_model.safetensors").c_str());
    std::ifstream cin(lora_old + "/adapter_config.json");
    nlohmann::json cj = nlohmann::json::parse(cin);
    cj["target_modules"].push_back("embed_out");
    std::ofstream(lora_old + "/adapter_config.json") << cj.dump(2);
    CHECK_THROWS_WITH_AS(compile_model(neox_options(dir, {{lora_old, 1.0}}, d / "lora_old.kplan")),
                         doctest::Contains("module 'embed_out': the module is not in the model"), CompileError);
  }
  // Messages and patterns in peft's names.
  auto edited = [&](const std::string& folder, const std::function<void(nlohmann::json&)>& edit) {
    const std::string a = d / folder;
    kiln::test::copy_dir(root + "every_linear/adapter", a);
    std::ifstream in(a + "/adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    edit(j);
    std::ofstream(a + "/adapter_config.json") << j.dump(2);
    return a;
  };
  const std::string every = root + "every_linear";
  CHECK_THROWS_WITH_AS(
      compile_model(neox_options(
          every, {{edited("rank", [](nlohmann::json& j) { j["rank_pattern"] = nlohmann::json::object(); }), 1.0}},
          d / "rank.kplan")),
      doctest::Contains("module 'gpt_neox.layers.0.attention.query_key_value': A has rank 4 but adapter_config.json "
                        "gives r = 8"),
      CompileError);
  const CompileOptions extra =
      neox_options(every, {{edited("extra", [](nlohmann::json& j) { j["target_modules"].push_back("q_proj"); }), 1.0}},
                   d / "extra.kplan");
  CHECK(compile_model(extra).notes.find("target_modules names 'q_proj', which match no module of the model") !=
        std::string::npos);
  CHECK_THROWS_WITH_AS(
      compile_model(neox_options(
          every, {{edited("block", [](nlohmann::json& j) { j["target_modules"].push_back("attention"); }), 1.0}},
          d / "block.kplan")),
      doctest::Contains("matches 'gpt_neox.layers.0.attention', a block of the model"), CompileError);
  // kiln's own names for a module, which peft's model does not have, name nothing.
  CHECK_THROWS_WITH_AS(
      compile_model(neox_options(
          every, {{edited("kiln_names", [](nlohmann::json& j) { j["target_modules"] = {"self_attn.qkv_proj"}; }), 1.0}},
          d / "kiln.kplan")),
      doctest::Contains("target module 'self_attn.qkv_proj' is not in the model"), CompileError);
}

// A tied checkpoint may ship lm_head.weight equal to the embedding (transformers still ties them):
// the tied-head fixtures' adapters merge as they do on the checkpoint without it.
TEST_CASE("lora: a tied checkpoint that ships an equal lm_head.weight merges as the tied one") {
  TempDir d;
  const std::string base_dir = d / "tied_with_head";
  kiln::test::copy_dir(kiln::test::fixture("tied_f32"), base_dir);
  {
    auto src = SafetensorsFile::open(base_dir + "/model.safetensors");
    std::vector<StWriteTensor> ts;
    for (const auto& [n, t] : src->tensors()) ts.push_back({n, t.dtype, t.shape, t.data, t.size});
    REQUIRE(src->tensors().count("model.embed_tokens.weight"));
    REQUIRE(!src->tensors().count("lm_head.weight"));
    const auto& e = src->tensors().at("model.embed_tokens.weight");
    ts.push_back({"lm_head.weight", e.dtype, e.shape, e.data, e.size});
    write_safetensors(base_dir + "/model.safetensors.new", ts);
  }
  std::rename((base_dir + "/model.safetensors.new").c_str(), (base_dir + "/model.safetensors").c_str());
  for (const std::string name :
       {"tied_saved_embedding", "tied_saved_head", "tied_ensure_tying", "tied_embedding", "tied_embedding_tying"}) {
    CAPTURE(name);
    const std::string dir = lora_fixture(name);
    REQUIRE(kiln::test::read_line(dir + "/base.txt") == "tied_f32");
    CompileOptions o = options("tied_f32", fixture_adapters(dir), d / (name + ".kplan"));
    o.model_dir = base_dir;
    CHECK(compiled_rel_l2(o, dir) <= 1e-4);
  }
}

TEST_CASE("lora: configs read as peft reads them: LoraConfig's defaults, patterns as Python's re") {
  // Each edit leaves what peft computes as it was, so the fixture's reference still holds:
  // rslora_qv has r = 4 and lora_alpha = 8, LoraConfig's default alpha (kiln took r); the
  // patterns are the fixture's own as Python reads them ("[[:j]" is a set of '[', ':' and 'j',
  // "{,1}" is {0,1}, \Z the end), which RE2 as such reads otherwise.
  TempDir d;
  struct Edit {
    const char* fixture;
    void (*edit)(nlohmann::json&);
  };
  const Edit edits[] = {
      {"rslora_qv", [](nlohmann::json& j) { j.erase("lora_alpha"); }},
      {"rank_pattern",
       [](nlohmann::json& j) {
         j["target_modules"] = ".*\\.(q_proj|v_pro[[:j]|down_proj)";
         j["rank_pattern"] = {{"model\\.layers\\.1\\.mlp\\.down_proj\\Z", 2}, {"q_proj{,1}", 4}};
         j["alpha_pattern"] = {{"v_pro[[:j]", 32}};
       }},
  };
  int i = 0;
  for (const Edit& e : edits) {
    CAPTURE(e.fixture);
    const std::string dir = lora_fixture(e.fixture);
    const std::string adapter = edited_adapter(d, "e" + std::to_string(i++), e.edit, e.fixture);
    const CompileOptions o =
        options(kiln::test::read_line(dir + "/base.txt"), {{adapter, 1.0}}, d / (std::string(e.fixture) + ".kplan"));
    CHECK(compiled_rel_l2(o, dir) <= 1e-4);
  }
  // Python's re refuses these escapes (peft could not load the adapter); RE2 would take them.
  for (const char* re : {"q_proj\\z", "\\p{L}+_proj", "\\Qq_proj\\E", "(?U)q_proj"}) {
    CAPTURE(re);
    CHECK_THROWS_WITH_AS(lora_module_pattern_matches(re, "q_proj"),
                         doctest::Contains("is not a regular expression kiln can match"), CompileError);
  }
  CHECK(lora_module_pattern_matches("a[[:digit:]]", "a:]"));  // Python: a, a set of "[:digt", then ']'
  CHECK_FALSE(lora_module_pattern_matches("a[[:digit:]]", "a1"));
  CHECK(lora_module_pattern_matches("a[]x]", "a]"));
  CHECK(lora_module_pattern_matches("x{,}", ""));
  CHECK(lora_module_pattern_matches("x{,2}y", "xxy"));
  CHECK_FALSE(lora_module_pattern_matches("x{,2}y", "xxxy"));
}

// peft adapts the target_modules names it finds and skips the others (it fails only when none is
// found), and skips modules_to_save names that match no module: real adapters carry such lists
// (q_proj/k_proj/v_proj/o_proj on Phi-3, whose attention is one qkv_proj; SEQ_CLS adapters'
// classifier and score). kiln merges them as peft does and names the skipped ones in the notes.
TEST_CASE("lora: names in target_modules or modules_to_save the model lacks are skipped, as peft skips them") {
  TempDir d;
  const std::string dir = lora_fixture("rslora_qv");
  const std::string adapter = edited_adapter(
      d, "extra",
      [](nlohmann::json& j) {
        j["target_modules"] = {"v_proj", "q_proj", "qkv_proj", "c_attn"};
        j["modules_to_save"] = {"classifier", "score"};
      },
      "rslora_qv");
  const CompileOptions o = options(kiln::test::read_line(dir + "/base.txt"), {{adapter, 1.0}}, d / "extra.kplan");
  CHECK(compiled_rel_l2(o, dir) <= 1e-4);  // peft's merge of the same tensors
  const std::string notes = compile_model(o).notes;
  CHECK(notes.find("adapter 'extra': target_modules names 'qkv_proj', 'c_attn', which match no module of the model: "
                   "as peft, kiln adapts the others") != std::string::npos);
  CHECK(notes.find("adapter 'extra': modules_to_save names 'classifier', 'score', which match no module of the "
                   "model: as peft, kiln skips them") != std::string::npos);
  // A name (or regex) that matches a block, not a layer: peft refuses the adapter ("Target module
  // LlamaMLP(...) is not supported"), and so does kiln.
  const std::string block = edited_adapter(
      d, "block",
      [](nlohmann::json& j) {
        j["target_modules"] = {"v_proj", "q_proj", "mlp"};
      },
      "rslora_qv");
  CHECK_THROWS_WITH_AS(
      compile_model(options(kiln::test::read_line(dir + "/base.txt"), {{block, 1.0}}, d / "block.kplan")),
      doctest::Contains("target_modules 'mlp' matches 'model.layers.0.mlp', a block of the model, not a layer with "
                        "weights (peft refuses such a target)"),
      CompileError);
  const std::string block_re = edited_adapter(
      d, "block_re", [](nlohmann::json& j) { j["target_modules"] = ".*\\.(q_proj|v_proj|self_attn)"; }, "rslora_qv");
  CHECK_THROWS_WITH_AS(
      compile_model(options(kiln::test::read_line(dir + "/base.txt"), {{block_re, 1.0}}, d / "block_re.kplan")),
      doctest::Contains("matches 'model.layers.0.self_attn', a block of the model"), CompileError);
  // None found: refused, as peft refuses it.
  const std::string none = edited_adapter(
      d, "none",
      [](nlohmann::json& j) {
        j["target_modules"] = {"qkv_proj", "c_attn"};
      },
      "rslora_qv");
  CHECK_THROWS_WITH_AS(
      compile_model(options(kiln::test::read_line(dir + "/base.txt"), {{none, 1.0}}, d / "none.kplan")),
      doctest::Contains("target module 'qkv_proj' is not in the model (nor is any other that target_modules names)"),
      CompileError);
}

TEST_CASE("lora: bad adapters are refused with a clear error and no plan") {
  TempDir d;
  const std::string plan = d / "p.kplan";
  struct Case {
    std::string name;
    std::vector<LoraAdapterSpec> lora;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"made for another model",
       {{lora_fixture("wrong_shape") + "/adapter", 1.0}},
       "B is [128, 8], expected [64, 8] for A [8, 64] and the model's weight [64, 64] (made for another model?)"});
  cases.push_back({"unknown target",
                   {{edited_adapter(d, "t1", [](nlohmann::json& j) { j["target_modules"] = {"c_attn"}; }), 1.0}},
                   "target module 'c_attn' is not in the model"});
  cases.push_back({"regex matching nothing",
                   {{edited_adapter(d, "t2", [](nlohmann::json& j) { j["target_modules"] = ".*\\.attn_out"; }), 1.0}},
                   "matches no module"});
  // Exponential for a backtracking engine (std::regex, Python's re) on a 30-character name.
  cases.push_back(
      {"pathological target regex",
       {{edited_adapter(d, "t2b", [](nlohmann::json& j) { j["target_modules"] = "(\\w|\\w|.)*\\.nothing"; }), 1.0}},
       "matches no module"});
  cases.push_back({"pathological rank pattern",
                   {{edited_adapter(d, "t2c",
                                    [](nlohmann::json& j) {
                                      j["rank_pattern"] = {{"(\\w|\\w|.)*x(\\w|.)*x", 4}};
                                    }),
                     1.0}},
                   ""});  // matches no module, so nothing changes: the plan is written
  cases.push_back({"backreference",
                   {{edited_adapter(d, "t2d", [](nlohmann::json& j) { j["target_modules"] = "(q)_proj\\1"; }), 1.0}},
                   "is not a regular expression kiln can match"});
  cases.push_back({"lookahead",
                   {{edited_adapter(d, "t2e",
                                    [](nlohmann::json& j) {
                                      j["rank_pattern"] = {{"q_proj(?=x)", 4}};
                                    }),
                     1.0}},
                   "rank_pattern 'q_proj(?=x)' is not a regular expression kiln can match"});
  cases.push_back({"rank disagrees",
                   {{edited_adapter(d, "t3", [](nlohmann::json& j) { j["r"] = 4; }), 1.0}},
                   "has rank 8 but adapter_config.json gives r = 4"});
  // (peft's scaling divides lora_alpha by r: it cannot load a null of either)
  cases.push_back({"r null",
                   {{edited_adapter(d, "tn_r", [](nlohmann::json& j) { j["r"] = nullptr; }), 1.0}},
                   "r is null, which peft cannot load"});
  cases.push_back({"lora_alpha null",
                   {{edited_adapter(d, "tn_alpha", [](nlohmann::json& j) { j["lora_alpha"] = nullptr; }), 1.0}},
                   "lora_alpha is null, which peft cannot load"});
  cases.push_back({"bias all",
                   {{edited_adapter(d, "t4", [](nlohmann::json& j) { j["bias"] = "all"; }), 1.0}},
                   "bias \"all\" is not supported"});
  cases.push_back({"not lora",
                   {{edited_adapter(d, "t5", [](nlohmann::json& j) { j["peft_type"] = "IA3"; }), 1.0}},
                   "peft_type \"IA3\" is not supported"});
  cases.push_back({"pissa init",
                   {{edited_adapter(d, "t6", [](nlohmann::json& j) { j["init_lora_weights"] = "pissa"; }), 1.0}},
                   "changes the base weights"});
  cases.push_back({"olora init in another case (peft lowers it)",
                   {{edited_adapter(d, "t6b", [](nlohmann::json& j) { j["init_lora_weights"] = "OLoRA"; }), 1.0}},
                   "changes the base weights"});
  cases.push_back({"an init peft does not know",
                   {{edited_adapter(d, "t6c", [](nlohmann::json& j) { j["init_lora_weights"] = "PiSSA"; }), 1.0}},
                   "init_lora_weights \"PiSSA\" is not an initialization peft knows"});
  cases.push_back({"dora flag without magnitudes",
                   {{edited_adapter(d, "t7", [](nlohmann::json& j) { j["use_dora"] = true; }), 1.0}},
                   "magnitude vector is missing"});
  cases.push_back({"variant",
                   {{edited_adapter(d, "t8",
                                    [](nlohmann::json& j) {
                                      j["use_bdlora"] = {{"a", 1}};
                                    }),
                     1.0}},
                   "use_bdlora is set"});
  cases.push_back({"dora mixed",
                   {{lora_fixture("dora") + "/adapter", 1.0}, {lora_fixture("all_linear_r8") + "/adapter", 1.0}},
                   "DoRA adapter can only be merged alone"});
  cases.push_back({"missing folder", {{d / "nope", 1.0}}, "cannot open"});
  // Settings that would make the merge non-finite: a rank of 0 (alpha / 0), an alpha or a weight whose
  // scale overflows f32.
  cases.push_back({"rank pattern of 0",
                   {{edited_adapter(d, "z1",
                                    [](nlohmann::json& j) {
                                      j["rank_pattern"] = {{"q_proj", 0}};
                                    }),
                     1.0}},
                   "rank_pattern values must be positive integers (0 for 'model.layers.0.self_attn.q_proj')"});
  cases.push_back({"huge alpha pattern",
                   {{edited_adapter(d, "z2",
                                    [](nlohmann::json& j) {
                                      j["alpha_pattern"] = {{"q_proj", 1e308}};
                                    }),
                     1.0}},
                   "module 'model.layers.0.self_attn.q_proj': its update B·A·inf has the non-finite value"});
  cases.push_back({"huge weight",
                   {{lora_fixture("all_linear_r8") + "/adapter", 1e39}},
                   "its update B·A·inf has the non-finite value"});
  // peft's module selection: a tensor of a module that target_modules, exclude_modules or
  // layers_to_transform leave out would not be loaded (layer_selection: layer 1, no down_proj).
  cases.push_back({"target_modules leaves a module out",
                   {{edited_adapter(d, "s1",
                                    [](nlohmann::json& j) {
                                      j["target_modules"] = {"q_proj", "k_proj"};
                                    }),
                     1.0}},
                   "module 'model.layers.0.mlp.down_proj': the adapter has LoRA tensors for it, but "});
  cases.push_back(
      {"target regex leaves a module out",
       {{edited_adapter(d, "s2", [](nlohmann::json& j) { j["target_modules"] = ".*self_attn\\..*"; }), 1.0}},
       "adapter_config.json's target_modules \".*self_attn\\..*\" does not match it (peft would not load "
       "them)"});
  cases.push_back({"exclude_modules lists a module",
                   {{edited_adapter(
                         d, "s3", [](nlohmann::json& j) { j["exclude_modules"] = {"v_proj"}; }, "layer_selection"),
                     1.0}},
                   "module 'model.layers.1.self_attn.v_proj': the adapter has LoRA tensors for it, but "});
  cases.push_back({"exclude_modules regex",
                   {{edited_adapter(
                         d, "s4", [](nlohmann::json& j) { j["exclude_modules"] = ".*\\.1\\.self_attn\\.q_proj"; },
                         "layer_selection"),
                     1.0}},
                   "exclude_modules matches it (peft would not load them)"});
  cases.push_back({"layers_to_transform of another layer",
                   {{edited_adapter(
                         d, "s5", [](nlohmann::json& j) { j["layers_to_transform"] = 0; }, "layer_selection"),
                     1.0}},
                   "layers_to_transform does not list its layer 1 (peft would not load them)"});
  cases.push_back({"layers_pattern that finds no index",
                   {{edited_adapter(
                         d, "s6", [](nlohmann::json& j) { j["layers_pattern"] = {"blocks"}; }, "layer_selection"),
                     1.0}},
                   "layers_to_transform is set and no layer index is found in its name"});
  cases.push_back({"layers_to_transform of strings",
                   {{edited_adapter(
                         d, "s7", [](nlohmann::json& j) { j["layers_to_transform"] = {"1"}; }, "layer_selection"),
                     1.0}},
                   "layers_to_transform must be a layer index, a list of them, or null"});
  cases.push_back({"exclude_modules of numbers",
                   {{edited_adapter(d, "s8", [](nlohmann::json& j) { j["exclude_modules"] = {1}; }), 1.0}},
                   "exclude_modules must be a regex, a list of module names, or null"});
  // Saved modules replace the model's whatever the weight: only weight 1 is what peft loads.
  cases.push_back({"modules_to_save with a weight",
                   {{lora_fixture("embedding") + "/adapter", 0.5}},
                   "an adapter with modules_to_save can only be merged with weight 1"});
  {
    // Keys: one for a module the model lacks, one unrecognized, and no LoRA tensors at all.
    const std::string dir = edited_adapter(d, "k1", [](nlohmann::json&) {});
    auto src = SafetensorsFile::open(dir + "/adapter_model.safetensors");
    std::vector<StWriteTensor> ts;
    for (const auto& [name, t] : src->tensors()) {
      std::string n = name;
      const size_t p = n.find("layers.0.");
      if (p != std::string::npos) n.replace(p, 9, "layers.7.");
      ts.push_back({n, t.dtype, t.shape, t.data, t.size});
    }
    write_safetensors(dir + "/adapter_model.safetensors.new", ts);
    std::rename((dir + "/adapter_model.safetensors.new").c_str(), (dir + "/adapter_model.safetensors").c_str());
    cases.push_back(
        {"module not in model", {{dir, 1.0}}, "model.layers.7.mlp.down_proj': the module is not in the model"});

    const std::string dir2 = edited_adapter(d, "k2", [](nlohmann::json&) {});
    std::vector<float> v(4, 1.0f);
    write_safetensors(
        dir2 + "/adapter_model.safetensors",
        {{"base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight", DType::F32, {4}, v.data(), 16}});
    cases.push_back({"unrecognized key", {{dir2, 1.0}}, "unrecognized key"});

    const std::string dir3 = edited_adapter(d, "k3", [](nlohmann::json&) {});
    write_safetensors(dir3 + "/adapter_model.safetensors", {});
    cases.push_back({"empty adapter", {{dir3, 1.0}}, "matches no module"});

    const std::string dir4 = edited_adapter(d, "k4", [](nlohmann::json&) {});
    auto bytes = kiln::test::read_bytes(dir4 + "/adapter_model.safetensors");
    bytes.resize(bytes.size() / 2);
    kiln::test::write_bytes(dir4 + "/adapter_model.safetensors", bytes);
    cases.push_back({"truncated tensors", {{dir4, 1.0}}, "adapter_model.safetensors"});
  }
  {  // A FIFO where the adapter's config should be: refused at once, never waited on.
    const std::string dir5 = edited_adapter(d, "k5", [](nlohmann::json&) {});
    std::remove((dir5 + "/adapter_config.json").c_str());
    REQUIRE(mkfifo((dir5 + "/adapter_config.json").c_str(), 0600) == 0);
    cases.push_back({"config is a FIFO", {{dir5, 1.0}}, "is not a regular file"});
  }
  // A NaN in a lora_B matrix (q_proj of layer 0: its first value), and in a modules_to_save copy
  // (the embedding fixture's saved lm_head).
  cases.push_back({"NaN in lora_B",
                   {{adapter_with_nan(d, "n1", lora_fixture("all_linear_r8"),
                                      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", 0),
                     1.0}},
                   "adapter 'n1', module 'model.layers.0.self_attn.q_proj': its update B·A·2 has the non-finite "
                   "value nan (a NaN or infinity in A or B, or a product past the f32 range)"});
  cases.push_back({"NaN in a saved module",
                   {{adapter_with_nan(d, "n2", lora_fixture("embedding"), "base_model.model.lm_head.weight", 7), 1.0}},
                   "saved module tensor 'base_model.model.lm_head.weight' holds a NaN or an infinity"});
  for (const Case& c : cases) {
    CAPTURE(c.name);
    std::remove(plan.c_str());
    const auto t0 = std::chrono::steady_clock::now();
    if (c.expect.empty()) {
      CHECK_NOTHROW(compile_model(options("gqa_f32", c.lora, plan)));
      CHECK(exists(plan));
    } else {
      const std::string err = kiln::test::compile_error(options("gqa_f32", c.lora, plan));
      CHECK(err.find(c.expect) != std::string::npos);
      CHECK_FALSE(exists(plan));
      MESSAGE(c.name << ": " << err);
    }
    // A bound on hanging, not a speed target (the matcher alone is timed below): a backtracking
    // matcher takes minutes on these.
    if (c.name.rfind("pathological", 0) == 0) CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
  }
  // A LoRA on a tied model's head: peft's merged and unmerged models differ (no single answer).
  std::remove(plan.c_str());
  const std::string head = edited_adapter(
      d, "t9",
      [](nlohmann::json& j) {
        j["target_modules"] = {"q_proj", "lm_head"};
      },
      "tied_saved_head");
  CHECK(kiln::test::compile_error(options("tied_f32", {{head, 1.0}}, plan))
            .find("target_modules names lm_head, which this model ties to its embedding") != std::string::npos);
  CHECK_FALSE(exists(plan));
  // ensure_weight_tying: the head's saved LoRA must be the embedding's, transposed (one value changed here).
  const std::string tied = adapter_with_nan(d, "t10", lora_fixture("tied_embedding_tying"),
                                            "base_model.model.lm_head.lora_A.weight", 3);
  CHECK(kiln::test::compile_error(options("tied_f32", {{tied, 1.0}}, plan))
            .find("module 'lm_head': ensure_weight_tying ties this head to the embedding, but its LoRA is not the "
                  "embedding's transposed") != std::string::npos);
  CHECK_FALSE(exists(plan));
}

TEST_CASE("lora: rank and alpha patterns are tried in the file's order, as peft's get_pattern_key does") {
  TempDir d;
  const std::string dir = d / "ordered";
  kiln::test::copy_dir(lora_fixture("all_linear_r8") + "/adapter", dir);
  std::ifstream in(dir + "/adapter_config.json");
  auto j = nlohmann::ordered_json::parse(in);
  // Both patterns match layer 0's q_proj; peft takes the first of the dict (the file's order):
  // "q_proj", rank 8 as the adapter's matrices. Sorted, the second (rank 4) would come first and
  // the adapter would be refused for a rank mismatch.
  j["rank_pattern"] = nlohmann::ordered_json::object();
  j["rank_pattern"]["q_proj"] = 8;
  j["rank_pattern"]["model.layers.0.self_attn.q_proj"] = 4;
  std::ofstream(dir + "/adapter_config.json") << j.dump(2);
  CHECK(kiln::test::compile_error(options("gqa_f32", {{dir, 1.0}}, d / "p.kplan")).empty());
  j["rank_pattern"].erase("q_proj");  // now the rank-4 pattern is the first match: refused
  std::ofstream(dir + "/adapter_config.json") << j.dump(2);
  CHECK(kiln::test::compile_error(options("gqa_f32", {{dir, 1.0}}, d / "p2.kplan")).find("gives r = 4") !=
        std::string::npos);
}

TEST_CASE("lora: module patterns match in time linear in the name, whatever the pattern") {
  // Each takes exponential time in a backtracking engine (std::regex, Python's re) on these names.
  const std::string name = "base_model.model.model.layers.31.self_attn.q_proj_and_a_long_tail_of_words";
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(lora_module_pattern_matches("(\\w|\\w|.)*\\.nothing", name));
  CHECK_FALSE(lora_module_pattern_matches("((a|a)*)*b", std::string(5000, 'a')));
  CHECK_FALSE(lora_module_pattern_matches("(.*.*)*x(.*)*y", name + name + name));
  CHECK(lora_module_pattern_matches(".*\\.q_proj.*", name));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  CHECK_THROWS_WITH_AS(lora_module_pattern_matches("(q)\\1", name), doctest::Contains("kiln can match"), CompileError);
}

TEST_CASE("lora: --lora DIR[:WEIGHT] parsing") {
  CHECK(parse_lora_spec("a/b").dir == "a/b");
  CHECK(parse_lora_spec("a/b").weight == 1.0);
  CHECK(parse_lora_spec("a/b:0.7").dir == "a/b");
  CHECK(parse_lora_spec("a/b:0.7").weight == 0.7);
  CHECK(parse_lora_spec("a/b:-1").weight == -1.0);
  CHECK(parse_lora_spec("c:/x/y").dir == "c:/x/y");  // not a number after the colon: part of the path
  CHECK_THROWS_AS(parse_lora_spec("a:inf"), CompileError);
  CHECK_THROWS_AS(parse_lora_spec(":0.5"), CompileError);
  // A folder that exists, and a weight that is not a number: said so, not "cannot open 'a:abc/…'".
  const std::string dir = lora_fixture("all_linear_r8") + "/adapter";
  const std::string said = dir + ":abc: the weight 'abc' after the colon is not a number";
  CHECK_THROWS_WITH_AS(parse_lora_spec(dir + ":abc"), doctest::Contains(said.c_str()), CompileError);
}

TEST_CASE("lora: target_modules \"all-linear\" (peft's shorthand) adapts every Linear but the LM head") {
  TempDir d;
  const std::string dir = edited_adapter(d, "all", [](nlohmann::json& j) { j["target_modules"] = "All-Linear"; });
  CHECK(kiln::test::compile_error(options("gqa_f32", {{dir, 1.0}}, d / "p.kplan")).empty());
  // The embedding fixture adapts lm_head through modules_to_save; a LoRA on the head under "all-linear"
  // is what peft leaves out.
  const std::string head = d / "head";
  kiln::test::copy_dir(lora_fixture("all_linear_r8") + "/adapter", head);
  {
    auto src = SafetensorsFile::open(head + "/adapter_model.safetensors");
    std::vector<StWriteTensor> ts;
    for (const auto& [name, t] : src->tensors()) ts.push_back({name, t.dtype, t.shape, t.data, t.size});
    std::vector<float> a(8 * 64, 0.01f), b(256 * 8, 0.01f);  // gqa_f32: hidden 64, vocab 256
    ts.push_back({"base_model.model.lm_head.lora_A.weight", DType::F32, {8, 64}, a.data(), a.size() * 4});
    ts.push_back({"base_model.model.lm_head.lora_B.weight", DType::F32, {256, 8}, b.data(), b.size() * 4});
    write_safetensors(head + "/adapter_model.safetensors.new", ts);
  }
  std::rename((head + "/adapter_model.safetensors.new").c_str(), (head + "/adapter_model.safetensors").c_str());
  {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(head + "/adapter_config.json"));
    j["target_modules"] = "all-linear";
    std::ofstream(head + "/adapter_config.json") << j.dump();
  }
  CHECK(kiln::test::compile_error(options("gqa_f32", {{head, 1.0}}, d / "h.kplan"))
            .find("module 'lm_head': the adapter has LoRA tensors for it, but " + head +
                  "/adapter_config.json's target_modules \"all-linear\" leaves out the output layer") !=
        std::string::npos);
}

TEST_CASE("lora: layers_to_transform takes a MoE expert's layer index as peft does (the first since peft 0.20)") {
  // An adapter on layer 1's expert 2 (DeepSeek's model.layers.1.mlp.experts.2.gate_proj, [32, 64]) with
  // layers_to_transform [1]: the pinned peft finds layer 1 (the first index) for any adapter (before 0.20
  // it found 2, #3318; such an adapter's tensors it would now drop, and kiln refuses them).
  TempDir d;
  auto adapter = [&](const std::string& name, const nlohmann::json& patch) {
    const std::string dir = d / name;
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    std::vector<float> a(8 * 64, 0.01f), b(32 * 8, 0.01f);
    const std::string m = "base_model.model.model.layers.1.mlp.experts.2.gate_proj";
    write_safetensors(dir + "/adapter_model.safetensors",
                      {{m + ".lora_A.weight", DType::F32, {8, 64}, a.data(), a.size() * 4},
                       {m + ".lora_B.weight", DType::F32, {32, 8}, b.data(), b.size() * 4}});
    nlohmann::json j = {{"peft_type", "LORA"},        {"r", 8},
                        {"lora_alpha", 16},           {"target_modules", {"gate_proj", "up_proj"}},
                        {"layers_to_transform", {1}}, {"layers_pattern", nullptr}};
    j.merge_patch(patch);
    std::ofstream(dir + "/adapter_config.json") << j.dump();
    CompileOptions o;
    o.model_dir = kiln::test::fixture("v3_noaux", "deepseek");
    o.output = d / (name + ".kplan");
    o.max_seq = 8;
    o.chunk = 4;
    o.lora = {{dir, 1.0}};
    return kiln::test::compile_error(o);
  };
  CHECK(adapter("current", {{"peft_version", "0.21.2"}}) == "");
  CHECK(adapter("pattern", {{"peft_version", "0.21.2"}, {"layers_pattern", "layers"}}) == "");
  CHECK(adapter("unversioned", nlohmann::json::object()) == "");  // (either index)
  CHECK(adapter("old", {{"peft_version", "0.19.1"}}) == "");      // (the version does not change the rule)
  CHECK(adapter("expert index", {{"layers_to_transform", {2}}}).find("layers_to_transform does not list its layer 1") !=
        std::string::npos);
  CHECK(adapter("other", {{"peft_version", "0.21.2"}, {"layers_to_transform", {2}}})
            .find("layers_to_transform does not list its layer 1 (peft would not load them)") != std::string::npos);
  CHECK(adapter("empty", {{"layers_to_transform", nlohmann::json::array()}}) == "");  // (peft: no filter)
  // Named exactly: peft takes it without the layer filter; an exclusion regex RE2 cannot read is not checked.
  CHECK(adapter("exact",
                {{"target_modules", {"model.layers.1.mlp.experts.2.gate_proj", "model.layers.1.mlp.experts.2.up_proj"}},
                 {"layers_to_transform", {5}}}) == "");
  CHECK(adapter("lookahead", {{"exclude_modules", "^(?!.*layers).*lm_head$"}}) == "");
}

// peft on transformers 5 converts the adapters of the MoE models whose experts transformers fuses (GLM-4.5, dots.llm1,
// ERNIE 4.5 MoE, HunYuan MoE, OLMoE, Qwen3-MoE, EXAONE MoE, DeepSeek): gate_proj, up_proj and down_proj targets become
// the fused experts' parameters, so a LoRA on a dense layer's or a shared expert's projection is left unloaded, and
// gate_proj without up_proj (or the reverse) is refused. kiln refuses both rather than merge what peft drops; the
// experts' own LoRA merges, and other families keep their dense MLP's.
TEST_CASE("lora: MoE models peft converts for fused experts: dense and shared MLP LoRA and half a gate|up refused") {
  TempDir d;
  auto compile_with = [&](const std::string& name, const std::string& family, const std::string& base,
                          const std::string& module, int64_t out, int64_t in, const nlohmann::json& targets) {
    const std::string dir = d / name;
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    std::vector<float> a(size_t(4 * in), 0.01f), b(size_t(out * 4), 0.01f);
    const std::string m = "base_model.model." + module;
    write_safetensors(dir + "/adapter_model.safetensors",
                      {{m + ".lora_A.weight", DType::F32, {4, in}, a.data(), a.size() * 4},
                       {m + ".lora_B.weight", DType::F32, {out, 4}, b.data(), b.size() * 4}});
    std::ofstream(dir + "/adapter_config.json")
        << nlohmann::json{{"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}, {"target_modules", targets}}.dump();
    CompileOptions o;
    o.model_dir = kiln::test::fixture(base, family);
    o.output = d / (name + ".kplan");
    o.max_seq = 8;
    o.chunk = 4;
    o.lora = {{dir, 1.0}};
    return kiln::test::compile_error(o);
  };
  const nlohmann::json mlp = {"gate_proj", "up_proj", "down_proj"};
  // EXAONE MoE hub_window_f32: layer 0 dense (160 wide), layers 1 and 2 experts of 32 with a shared one of 32
  CHECK(compile_with("dense", "exaone_moe", "hub_window_f32", "model.layers.0.mlp.gate_proj", 160, 64, mlp)
            .find("module 'model.layers.0.mlp.gate_proj': a LoRA on gate_proj outside the experts, which peft on "
                  "transformers 5 leaves unloaded") != std::string::npos);
  CHECK(
      compile_with("shared", "exaone_moe", "hub_window_f32", "model.layers.1.mlp.shared_experts.down_proj", 64, 32, mlp)
          .find("a LoRA on down_proj outside the experts") != std::string::npos);
  CHECK(compile_with("expert", "exaone_moe", "hub_window_f32", "model.layers.1.mlp.experts.2.down_proj", 64, 32, mlp) ==
        "");
  CHECK(compile_with("half", "exaone_moe", "hub_window_f32", "model.layers.1.mlp.experts.2.gate_proj", 32, 64,
                     {"gate_proj", "q_proj"})
            .find("target_modules names gate_proj without up_proj, which peft refuses") != std::string::npos);
  CHECK(compile_with("half_path", "glm4_moe", "air_f32", "model.layers.1.mlp.experts.2.up_proj", 32, 64,
                     {"model.layers.1.mlp.experts.2.up_proj"})
            .find("target_modules names up_proj without gate_proj") != std::string::npos);
  CHECK(compile_with("deepseek_dense", "deepseek", "v3_noaux", "model.layers.0.mlp.up_proj", 128, 64, mlp)
            .find("a LoRA on up_proj outside the experts") != std::string::npos);
  // (a dense model's MLP: peft converts nothing)
  CHECK(compile_with("llama", "llama", "gqa_f32", "model.layers.0.mlp.gate_proj", 160, 64, {"gate_proj"}) == "");
}

// DeepSeek specifics beyond parity (tests/runtime/test_parity.cpp): the latent KV cache and
// its report, skipped MTP layers, and config errors.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "compiler/compile.h"
#include "compiler/error.h"
#include "runtime/plan.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

std::string compile_error(const std::string& dir, const std::string& out) {
  CompileOptions o;
  o.model_dir = dir;
  o.output = out;
  o.max_seq = 32;
  return kiln::test::compile_error(o);
}

}  // namespace

TEST_CASE("deepseek: the plan's KV cache is the latent one, and MTP layers are skipped and noted") {
  TempDir d;
  CompileOptions o;
  o.model_dir = kiln::test::fixture("v3_noaux", "deepseek");
  o.output = d / "p.kplan";
  o.max_seq = 32;
  o.dtype = "bf16";
  const CompileSummary s = compile_model(o);
  CHECK(s.notes.find("skipped 44 tensors of 1 multi-token-prediction layer") != std::string::npos);
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  const ModelInfo& m = plan.value()->model();
  // 3 layers × (kv_lora_rank 32 + qk_rope 8) × 2 bytes, against 3 × 4 heads × (24 + 16) × 2.
  CHECK(m.kv_bytes_per_token == 3 * 40 * 2);
  CHECK(m.mha_kv_bytes_per_token == 3 * 4 * 40 * 2);
  CHECK(m.notes == s.notes);
  int caches = 0;
  for (const auto& t : plan.value()->tensors())
    if (t.region == Region::kKvCache) {
      ++caches;
      CHECK(t.shape == std::vector<int64_t>{1, 32, 40});
    }
  CHECK(caches == 3);
  // The folded MLA weights exist; the raw kv_b_proj does not.
  bool has_ukt = false, has_kvb = false;
  for (const auto& t : plan.value()->tensors()) {
    has_ukt = has_ukt || t.name == "model.layers.0.self_attn.w_uk_t.weight";
    has_kvb = has_kvb || t.name == "model.layers.0.self_attn.kv_b_proj.weight";
  }
  CHECK(has_ukt);
  CHECK_FALSE(has_kvb);
}

TEST_CASE("deepseek: bad configs and checkpoints are refused with the key named") {
  struct Case {
    const char* name;
    void (*edit)(nlohmann::json&);
    const char* expect;
  };
  const Case cases[] = {
      {"kv heads", [](nlohmann::json& j) { j["num_key_value_heads"] = 2; }, "num_key_value_heads"},
      {"moe freq", [](nlohmann::json& j) { j["moe_layer_freq"] = 2; }, "moe_layer_freq"},
      {"topk method", [](nlohmann::json& j) { j["topk_method"] = "noaux_tc"; }, "topk_method"},
      {"groups", [](nlohmann::json& j) { j["n_group"] = 3; }, "n_group"},
      {"yarn keys",  // (an absent original_max_position_embeddings is max_position_embeddings, as transformers reads
                     // it)
       [](nlohmann::json& j) {
         j["rope_parameters"] = {
             {"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"original_max_position_embeddings", 64}};
       },
       "needs 'factor'"},
      {"rope type", [](nlohmann::json& j) { j["rope_parameters"]["rope_type"] = "longrope"; }, "rope type 'longrope'"},
      {"rank", [](nlohmann::json& j) { j["kv_lora_rank"] = 16; }, "kv_a_proj_with_mqa.weight"},
      {"query rank 0", [](nlohmann::json& j) { j["q_lora_rank"] = 0; }, "q_lora_rank 0 is a low-rank query of rank 0"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    TempDir d;
    kiln::test::copy_dir(kiln::test::fixture("v2_group_limited", "deepseek"), d / "m");
    std::ifstream in(d / "m/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    c.edit(j);
    std::ofstream(d / "m/config.json") << j.dump();
    const std::string err = compile_error(d / "m", d / "p.kplan");
    CHECK(err.find(c.expect) != std::string::npos);
    MESSAGE(std::string(c.name) << ": " << err);
  }
}

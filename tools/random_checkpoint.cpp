// kiln-random-checkpoint: writes a random-weight checkpoint (config.json, bf16 safetensors
// shards and model.safetensors.index.json, as the hub ships them) in a named shape, for
// benchmarks and compile-time measurements where no real checkpoint can be downloaded.
//   kiln-random-checkpoint --shape 1b OUT_DIR       (Llama-3.2-1B: 2048 hidden, 16 layers, tied)
//   kiln-random-checkpoint --shape 8b OUT_DIR       (Llama-3.1-8B: 4096 hidden, 32 layers)
//   kiln-random-checkpoint --shape v2-lite OUT_DIR  (DeepSeek-V2-Lite: MLA, 64+2 experts, 6 active)
//   kiln-random-checkpoint --shape sd15 OUT_DIR     (a Stable Diffusion 1.5 diffusers folder, no tokenizer)
//   kiln-random-checkpoint --shape sd-tiny OUT_DIR  (a tiny pipeline of the same layout, for smoke runs)
// Weights are uniform with the std of a 0.02 normal; shards hold whole layers (≤ ~1 GiB).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "compiler/error.h"
#include "compiler/frontends/deepseek.h"
#include "compiler/frontends/llama.h"
#include "compiler/safetensors.h"
#include "tools/random_pipeline.h"

namespace {

struct Shape {
  int64_t vocab, hidden, ffn, layers, heads, kv_heads;
  bool tied;
  double rope_theta;
};

// xorshift64* → bf16 uniform in [-a, a] with a = 0.02·√3 (std 0.02).
void fill_bf16(std::vector<uint16_t>& v, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  const float a = 0.02f * std::sqrt(3.0f);
  for (uint16_t& x : v) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const uint64_t r = s * 0x2545F4914F6CDD1Dull;
    const float u = float(r >> 40) * (1.0f / 16777216.0f);
    x = kiln::f32_to_bf16((2.0f * u - 1.0f) * a);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight checkpoint in a standard LLaMA or DeepSeek shape"};
  std::string shape_name = "1b", out;
  int64_t layers = 0;
  app.add_option("--shape", shape_name, "1b | 8b | tiny | v2-lite | sd15 | sd-tiny")
      ->check(CLI::IsMember({"1b", "8b", "tiny", "v2-lite", "sd15", "sd-tiny"}));
  app.add_option("--layers", layers, "Override the layer count");
  app.add_option("out_dir", out, "Folder to create")->required();
  CLI11_PARSE(app, argc, argv);
  Shape s = shape_name == "8b"   ? Shape{128256, 4096, 14336, 32, 32, 8, false, 500000.0}
            : shape_name == "1b" ? Shape{128256, 2048, 8192, 16, 32, 8, true, 500000.0}
                                 : Shape{512, 128, 352, 2, 4, 2, false, 10000.0};
  if (layers > 0) s.layers = layers;
  const int64_t hd = s.hidden / s.heads;
  if (shape_name == "sd15" || shape_name == "sd-tiny") {
    try {
      const uint64_t total = kiln::write_random_pipeline(out, shape_name == "sd-tiny", fill_bf16);
      std::printf("%s: %s pipeline, %.2f GB of bf16 weights\n", out.c_str(), shape_name.c_str(), double(total) / 1e9);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln-random-checkpoint: error: %s\n", e.what());
      return 1;
    }
  }
  try {
    if (std::system(("mkdir -p '" + out + "'").c_str()) != 0) throw kiln::CompileError("cannot create " + out);
    nlohmann::json cfg;
    if (shape_name == "v2-lite") {
      cfg = {{"architectures", {"DeepseekV2ForCausalLM"}},
             {"model_type", "deepseek_v2"},
             {"vocab_size", 102400},
             {"hidden_size", 2048},
             {"intermediate_size", 10944},
             {"moe_intermediate_size", 1408},
             {"num_hidden_layers", layers > 0 ? layers : 27},
             {"num_attention_heads", 16},
             {"num_key_value_heads", 16},
             {"q_lora_rank", nullptr},
             {"kv_lora_rank", 512},
             {"qk_nope_head_dim", 128},
             {"qk_rope_head_dim", 64},
             {"v_head_dim", 128},
             {"n_routed_experts", 64},
             {"n_shared_experts", 2},
             {"num_experts_per_tok", 6},
             {"first_k_dense_replace", 1},
             {"moe_layer_freq", 1},
             {"topk_method", "greedy"},
             {"n_group", 1},
             {"topk_group", 1},
             {"routed_scaling_factor", 1.0},
             {"scoring_func", "softmax"},
             {"norm_topk_prob", false},
             {"max_position_embeddings", 163840},
             {"rms_norm_eps", 1e-6},
             {"tie_word_embeddings", false},
             {"hidden_act", "silu"},
             {"attention_bias", false},
             {"dtype", "bfloat16"},
             {"rope_parameters",
              {{"rope_type", "yarn"},
               {"rope_theta", 10000.0},
               {"factor", 40.0},
               {"original_max_position_embeddings", 4096},
               {"beta_fast", 32},
               {"beta_slow", 1},
               {"mscale", 0.707},
               {"mscale_all_dim", 0.707}}}};
    } else
      cfg = {{"architectures", {"LlamaForCausalLM"}},
             {"model_type", "llama"},
             {"vocab_size", s.vocab},
             {"hidden_size", s.hidden},
             {"intermediate_size", s.ffn},
             {"num_hidden_layers", s.layers},
             {"num_attention_heads", s.heads},
             {"num_key_value_heads", s.kv_heads},
             {"head_dim", hd},
             {"max_position_embeddings", 131072},
             {"rms_norm_eps", 1e-5},
             {"tie_word_embeddings", s.tied},
             {"hidden_act", "silu"},
             {"attention_bias", false},
             {"mlp_bias", false},
             {"dtype", "bfloat16"},
             {"rope_parameters",
              {{"rope_type", "llama3"},
               {"rope_theta", s.rope_theta},
               {"factor", 32.0},
               {"low_freq_factor", 1.0},
               {"high_freq_factor", 4.0},
               {"original_max_position_embeddings", 8192}}}};
    std::ofstream(out + "/config.json") << cfg.dump(2);

    // Shards of at most ~1 GiB, filled in name order.
    const auto shapes = shape_name == "v2-lite"
                            ? kiln::deepseek_tensor_shapes(kiln::read_deepseek_config(out + "/config.json"))
                            : kiln::llama_tensor_shapes(kiln::llama_config_from_shape(
                                  s.vocab, s.hidden, s.ffn, s.layers, s.heads, s.kv_heads, s.tied));
    std::vector<std::vector<std::pair<std::string, std::vector<int64_t>>>> shards(1);
    uint64_t shard_bytes = 0;
    for (const auto& [name, shape] : shapes) {
      uint64_t bytes = 2;
      for (int64_t d : shape) bytes *= uint64_t(d);
      if (shard_bytes > 0 && shard_bytes + bytes > (uint64_t(1) << 30)) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().push_back({name, shape});
      shard_bytes += bytes;
    }

    // Shards are filled and written by several threads (the 8B and V2-Lite shapes are 16 and 31 GB);
    // each tensor's seed is its place in name order, so the files do not depend on the thread count.
    nlohmann::json weight_map = nlohmann::json::object();
    std::vector<std::string> shard_names(shards.size());
    std::vector<uint64_t> first_seed(shards.size(), 1);
    for (size_t k = 0; k < shards.size(); ++k) {
      char name[64];
      std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
      shard_names[k] = name;
      uint64_t filled = 0;  // norms are ones and take no seed
      for (const auto& t : shards[k]) {
        weight_map[t.first] = name;
        filled += t.second.size() != 1;
      }
      if (k + 1 < shards.size()) first_seed[k + 1] = first_seed[k] + filled;
    }
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> total{0};
    std::mutex error_mutex;
    std::string error;
    auto worker = [&] {
      try {
        for (size_t k = next++; k < shards.size(); k = next++) {
          std::vector<std::vector<uint16_t>> data;
          std::vector<kiln::StWriteTensor> tensors;
          uint64_t seed = first_seed[k];
          for (const auto& [tname, shape] : shards[k]) {
            size_t n = 1;
            for (int64_t d : shape) n *= size_t(d);
            data.emplace_back(n);
            if (shape.size() == 1) std::fill(data.back().begin(), data.back().end(), kiln::f32_to_bf16(1.0f));  // norms
            else fill_bf16(data.back(), seed++);
          }
          for (size_t i = 0; i < shards[k].size(); ++i) {
            tensors.push_back(
                {shards[k][i].first, kiln::DType::BF16, shards[k][i].second, data[i].data(), data[i].size() * 2});
            total += data[i].size() * 2;
          }
          kiln::write_safetensors(out + "/" + shard_names[k], tensors);
          std::fprintf(stderr, "wrote %s\n", shard_names[k].c_str());
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = e.what();
        next = shards.size();
      }
    };
    // Each thread holds one ~1 GiB shard in memory: at most 8 of them.
    const size_t n_threads =
        std::max<size_t>(1, std::min<size_t>({std::thread::hardware_concurrency(), 8, shards.size()}));
    std::vector<std::thread> threads;
    for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    if (!error.empty()) throw std::runtime_error(error);
    std::ofstream(out + "/model.safetensors.index.json")
        << nlohmann::json({{"metadata", {{"total_size", total.load()}}}, {"weight_map", weight_map}}).dump(2);
    std::printf("%s: %s shape, %lld layers, %.2f GB of bf16 weights\n", out.c_str(), shape_name.c_str(),
                (long long)cfg["num_hidden_layers"].get<int64_t>(), double(total.load()) / 1e9);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln-random-checkpoint: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

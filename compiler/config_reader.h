// Typed reads of a model's config.json with errors that name the file and key, shared by the
// LLaMA and DeepSeek config readers, plus the RoPE settings both families use.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace kiln {

struct RopeConfig {
  std::string type = "default";  // default | linear | llama3 | yarn
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;                  // llama3
  int64_t original_max_position_embeddings = 8192;                       // llama3, yarn
  double beta_fast = 32, beta_slow = 1, mscale = 0, mscale_all_dim = 0;  // yarn
  double attention_factor = -1;                                          // yarn; < 0: derived from mscale
  bool truncate = true;                                                  // yarn
};

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {}
  const nlohmann::json& doc() const { return j_; }
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const;
  bool has(const nlohmann::json& o, const char* k) const { return o.contains(k) && !o[k].is_null(); }
  bool has(const char* k) const { return has(j_, k); }
  // A positive integer (at most 2^31), or `def` when absent and not required.
  int64_t pos_int(const nlohmann::json& o, const char* k, bool required, int64_t def = 0) const;
  int64_t pos_int(const char* k, bool required, int64_t def = 0) const { return pos_int(j_, k, required, def); }
  // A non-negative integer (at most 2^31).
  int64_t count(const char* k, int64_t def) const;
  double num(const nlohmann::json& o, const char* k, double def) const;
  double num(const char* k, double def) const { return num(j_, k, def); }
  bool boolean(const char* k, bool def) const;
  std::string str(const char* k, const std::string& def) const;
  std::string architecture() const;  // architectures[0], or model_type, or ""
  // dtype / torch_dtype (float32, bfloat16, float16); false when absent.
  bool dtype(DType* out) const;
  // rope_parameters (transformers 5) or rope_theta + rope_scaling (transformers 4).
  RopeConfig rope(std::initializer_list<const char*> allowed_types) const;

 private:
  const nlohmann::json& j_;
  std::string path_;
};

// inv_freq (head_dim/2 floats) for any supported rope type, in f32 as transformers computes it.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim);
// The factor transformers multiplies cos and sin by (yarn's attention_factor; 1 otherwise).
double rope_attention_factor(const RopeConfig& rope);
// yarn's get_mscale: 1 for scale <= 1, else 0.1·mscale·ln(scale) + 1.
double yarn_get_mscale(double scale, double mscale);

}  // namespace kiln

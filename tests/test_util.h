// Shared test helpers: temp folders, file bytes, fixtures, relative L2 error, and tiny
// random LLaMA checkpoints for format tests (parity tests use the transformers fixtures).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/safetensors.h"
#include "kernels/sample.h"
#include "runtime/context.h"
#include "runtime/executor.h"

namespace kiln::test {

// A fresh empty folder, removed with its contents when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Sets (or, with null, unsets) an environment variable for a scope and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

std::vector<uint8_t> read_bytes(const std::string& path);
// The first line of a text file ("" if it cannot be read).
std::string read_line(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
void copy_dir(const std::string& from, const std::string& to);
// The temporary files an output writer leaves beside `target` (create_temp_beside's target.tmp.*).
std::vector<std::string> temp_files_beside(const std::string& target);
// tests/fixtures, or $KILN_FIXTURES_DIR when set (a build carried to another machine).
std::string fixtures_root();
// A fixture file by its path under tests/fixtures, or where CMake unpacked it when it is committed
// as <path>.tar.xz (files over 8 MiB; the root CMakeLists.txt), or under $KILN_UNPACKED_FIXTURES_DIR
// when set.
std::string fixture_path(const std::string& rel);
std::string fixture(const std::string& name, const std::string& family = "llama");  // <root>/<family>/<name>
std::vector<std::string> fixture_names(const std::string& family);  // every folder under <root>/<family>
inline std::vector<std::string> llama_fixture_names() { return fixture_names("llama"); }
// The LLaMA-frontend families with their own fixture folders (besides llama/), each with a transformers
// reference: the parity tests run every fixture of each, on the CPU and on CUDA.
inline std::vector<std::string> llm_fixture_families() {
  return {"qwen2",
          "qwen3",
          "qwen3_moe",
          "mistral",
          "mixtral",
          "phi3",
          "gemma",
          "gemma2",
          "gemma3",
          "granite",
          "smollm3",
          "phi",
          "ernie4_5",
          "olmo2",
          "ministral",
          "granitemoe",
          "qwen2_moe",
          "olmo3",
          "glm4",
          "exaone4",
          "seed_oss",
          "gpt_oss",
          "helium",
          "granitemoeshared",
          "arcee",
          "cohere",
          "cohere2",
          "starcoder2",
          "stablelm",
          "olmoe",
          "nemotron",
          "gpt_neox",
          "glm4_moe",
          "glm4_moe_lite",
          "youtu",
          "solar_open",
          "minimax_m2",
          "hyperclovax",
          "nanochat",
          "vaultgemma",
          "cwm",
          "flex_olmo",
          "falcon",
          "gptj",
          "gpt2",
          "opt",
          "gpt_neo",
          "gpt_bigcode",
          "bloom",
          "mpt",
          "dbrx",
          "glm",
          "olmo",
          "ministral3",
          "ernie4_5_moe",
          "hunyuan_v1_dense",
          "hunyuan_v1_moe",
          "dots1",
          "exaone",
          "exaone_moe",
          "internlm3",
          "iquestcoder",
          "apertus",
          "phimoe",
          "jais2"};
}

double rel_l2(const float* out, const float* ref, size_t n);
std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f);

// Reference tensors of a fixture.
struct Reference {
  int64_t rows = 0, tokens = 0, vocab = 0;
  std::vector<int32_t> input_ids, prompt_ids, greedy_ids;
  std::vector<float> logits;
};
// The fixture's reference.safetensors, or another file of the same layout (reference_int8.safetensors).
Reference load_reference(const std::string& fixture_dir, const std::string& file = "reference.safetensors");

// A tiny random LLaMA checkpoint (config.json + model.safetensors) for plan-format tests.
struct TinyLlama {
  int64_t vocab = 16, hidden = 8, ffn = 12, layers = 1, heads = 2, kv_heads = 1;
  bool tied = true;
  float scale = 0.3f;  // standard deviation of the (normal) weights
};
void write_tiny_llama(const std::string& dir, const TinyLlama& t = {});
// A tiny LLaMA (vocab 64, hidden 16) whose weights (standard deviation 300) take an f16 plan's
// activations past f16's range (NaN logits), and an f32 plan's nowhere near f32's.
TinyLlama f16_overflowing_llama();
// A tiny LLaMA with a fixture tokenizer's files (tokenizer.json, tokenizer_config.json) in an
// existing folder: by default the byte-level fixture's (vocab 1211); `tokenizer` is a folder
// under tests/fixtures, `vocab` its vocabulary size.
void write_tiny_llama_with_tokenizer(const std::string& dir, const std::string& tokenizer = "tokenizers/bytelevel",
                                     int64_t vocab = 1211);

// The CompileError message of compiling with o, or "" when it compiles.
std::string compile_error(const CompileOptions& o);

// Drives an LLM plan's decode program on `e` by token feedback (make_token_feedback: the backend's
// own, or host steps): row r
// starts from token first[r] at position 0 with sampling params[r] (first[r] < 0: an idle row), and
// `steps` steps (at most kFeedbackRing) are enqueued before any is read. Returns every step's
// next_token, steps × batch. Throws std::runtime_error with the executor's message on a failure.
std::vector<int32_t> feedback_run(Executor& e, const Plan& plan, const std::vector<int32_t>& first,
                                  const std::vector<SampleParams>& params, int steps);

// A CPU context on `threads` worker threads (0: the default). Throws std::runtime_error with the
// status message on a failure.
std::unique_ptr<Context> cpu_context(std::shared_ptr<const Plan> plan, int threads);
// rel_l2 of logits against the reference's.
double reference_error(const std::vector<float>& logits, const Reference& ref);

// The context's score() of the reference's input_ids: its logits, rows × tokens × vocab (NaN-filled
// first, so a row it does not write shows). Throws std::runtime_error with the status message.
std::vector<float> score_reference(Context& c, const Reference& ref);

// The prompt followed by the tokens generate() picks greedily (up to n_new; fewer when it stops).
// Throws std::runtime_error with the status message on a failure.
std::vector<int32_t> greedy_continuation(Context& c, const std::vector<int32_t>& prompt, int64_t n_new);

// Runs a shell command; returns its exit code and fills out with stdout+stderr.
int run_command(const std::string& cmd, std::string* out);

}  // namespace kiln::test

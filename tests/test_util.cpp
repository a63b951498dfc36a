#include "test_util.h"

#include "compiler/frontends/llama.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace kiln::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kiln-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::string cmd = "rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path_.c_str());
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  if (const char* v = std::getenv(name)) {
    had_ = true;
    old_ = v;
  }
  if (value) setenv(name, value, 1);
  else unsetenv(name);
}

ScopedEnv::~ScopedEnv() {
  if (had_) setenv(name_.c_str(), old_.c_str(), 1);
  else unsetenv(name_.c_str());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  // One read of the whole file (a byte-wise stream iterator is slow in the -O0 sanitizer tree).
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot read " + path);
  const std::streamoff size = in.tellg();
  if (size < 0) throw std::runtime_error("cannot read " + path);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size())))
    throw std::runtime_error("cannot read " + path);
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void copy_dir(const std::string& from, const std::string& to) {
  std::string cmd = "mkdir -p '" + to + "' && cp -r '" + from + "'/. '" + to + "'/";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("copy failed: " + cmd);
}

std::string fixtures_root() {
  const char* env = std::getenv("KILN_FIXTURES_DIR");
  return env && *env ? std::string(env) : std::string(KILN_FIXTURES_DIR);
}

std::string fixture_path(const std::string& rel) {
  const std::string in_tree = fixtures_root() + "/" + rel;
  if (std::ifstream(in_tree).good()) return in_tree;
  // committed as <file>.tar.xz: CMake's unpacked copy, or $KILN_UNPACKED_FIXTURES_DIR's (a build carried elsewhere)
  const char* env = std::getenv("KILN_UNPACKED_FIXTURES_DIR");
  return (env && *env ? std::string(env) : std::string(KILN_UNPACKED_FIXTURES_DIR)) + "/" + rel;
}

std::string fixture(const std::string& name, const std::string& family) {
  return fixtures_root() + "/" + family + "/" + name;
}

std::vector<std::string> temp_files_beside(const std::string& target) {
  const size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : target.substr(0, slash);
  const std::string prefix = target.substr(slash == std::string::npos ? 0 : slash + 1) + ".tmp";
  std::vector<std::string> found;
  DIR* d = opendir(dir.c_str());
  if (!d) return found;
  while (dirent* e = readdir(d))
    if (std::string(e->d_name).rfind(prefix, 0) == 0) found.push_back(e->d_name);
  closedir(d);
  return found;
}

std::vector<std::string> fixture_names(const std::string& family) {
  std::vector<std::string> names;
  const std::string dir = fixtures_root() + "/" + family;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    struct stat st;
    if (n[0] != '.' && stat((dir + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

double rel_l2(const float* out, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(out[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

namespace {

std::vector<int32_t> ids_of(const StTensor& t) {
  std::vector<int32_t> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t x;
    std::memcpy(&x, t.data + i * 8, 8);
    v[i] = int32_t(x);
  }
  return v;
}

}  // namespace

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

Reference load_reference(const std::string& dir, const std::string& file) {
  auto f = SafetensorsFile::open(dir + "/" + file);
  const auto& t = f->tensors();
  Reference r;
  const StTensor& ids = t.at("input_ids");
  const StTensor& lg = t.at("logits");
  r.rows = ids.shape[0];
  r.tokens = ids.shape[1];
  r.vocab = lg.shape[2];
  r.input_ids = ids_of(ids);
  r.prompt_ids = ids_of(t.at("prompt_ids"));
  r.greedy_ids = ids_of(t.at("greedy_ids"));
  r.logits.resize(size_t(lg.numel()));
  std::memcpy(r.logits.data(), lg.data, lg.size);
  return r;
}

void write_tiny_llama_with_tokenizer(const std::string& dir, const std::string& tokenizer, int64_t vocab) {
  TinyLlama tl;
  tl.vocab = vocab;
  write_tiny_llama(dir, tl);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    write_bytes(dir + "/" + f, read_bytes(fixture_path(tokenizer + "/" + f)));
}

TinyLlama f16_overflowing_llama() {
  TinyLlama t;
  t.vocab = 64;
  t.hidden = 16;
  t.ffn = 24;
  t.scale = 300.0f;
  return t;
}

void write_tiny_llama(const std::string& dir, const TinyLlama& t) {
  const int64_t hd = t.hidden / t.heads;
  std::string cfg =
      "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": " +
      std::to_string(t.vocab) + ", \"hidden_size\": " + std::to_string(t.hidden) +
      ", \"intermediate_size\": " + std::to_string(t.ffn) + ", \"num_hidden_layers\": " + std::to_string(t.layers) +
      ", \"num_attention_heads\": " + std::to_string(t.heads) +
      ", \"num_key_value_heads\": " + std::to_string(t.kv_heads) +
      ", \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": " +
      (t.tied ? "true" : "false") +
      ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, \"dtype\": \"float32\"}";
  std::ofstream(dir + "/config.json") << cfg;
  const auto shapes =
      llama_tensor_shapes(llama_config_from_shape(t.vocab, t.hidden, t.ffn, t.layers, t.heads, t.kv_heads, t.tied));
  std::vector<std::vector<float>> data;
  std::vector<StWriteTensor> tensors;
  uint32_t seed = 1;
  for (const auto& [name, shape] : shapes) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    data.push_back(random_floats(n, seed++, t.scale));
  }
  size_t i = 0;
  for (const auto& [name, shape] : shapes) {
    tensors.push_back({name, DType::F32, shape, data[i].data(), data[i].size() * 4});
    ++i;
  }
  write_safetensors(dir + "/model.safetensors", tensors);
}

std::string compile_error(const CompileOptions& o) {
  try {
    compile_model(o);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

int run_command(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) s.append(buf, n);
  int rc = pclose(p);
  if (out) *out = s;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::vector<int32_t> feedback_run(Executor& e, const Plan& p, const std::vector<int32_t>& first,
                                  const std::vector<SampleParams>& params, int steps) {
  auto check = [](const Status& st) {
    if (!st.is_ok()) throw std::runtime_error(st.message());
  };
  const int index = p.find_program("decode");
  if (index < 0) throw std::runtime_error("the plan has no decode program");
  const ProgramInfo& pr = p.programs()[size_t(index)];
  const FeedbackTensors t = FeedbackTensors::of(pr);
  auto made = make_token_feedback(e, p, index, t);
  check(made.status());
  TokenFeedback& f = *made.value();
  uint8_t* state = e.host_state();
  auto at = [&](uint32_t tensor) { return reinterpret_cast<int32_t*>(state + p.tensors()[tensor].offset); };
  const size_t batch = first.size();
  for (size_t r = 0; r < batch; ++r) {
    at(t.tokens)[r] = std::max(first[r], 0);
    at(t.start_pos)[r] = 0;
    at(t.n_valid)[r] = first[r] >= 0 ? 1 : 0;
    reinterpret_cast<SampleParams*>(at(t.sampling))[r] = params[r];
  }
  for (int s = 0; s < steps; ++s) check(f.enqueue_step(s == 0));
  std::vector<int32_t> out;
  for (int s = 0; s < steps; ++s) {
    Result<const int32_t*> r = f.step_tokens(uint64_t(s));
    check(r.status());
    out.insert(out.end(), r.value(), r.value() + batch);
  }
  check(f.finish_steps());
  return out;
}

std::unique_ptr<Context> cpu_context(std::shared_ptr<const Plan> plan, int threads) {
  ContextOptions co;
  co.n_threads = threads;
  auto r = Context::create(std::move(plan), co);
  if (!r.is_ok()) throw std::runtime_error(r.status().message());
  return r.take();
}

double reference_error(const std::vector<float>& logits, const Reference& ref) {
  return rel_l2(logits.data(), ref.logits.data(), ref.logits.size());
}

std::vector<float> score_reference(Context& c, const Reference& ref) {
  std::vector<float> logits(ref.logits.size(), std::nanf(""));
  const Status st = c.score(ref.input_ids.data(), ref.rows, ref.tokens, logits.data());
  if (!st.is_ok()) throw std::runtime_error(st.message());
  return logits;
}

std::vector<int32_t> greedy_continuation(Context& c, const std::vector<int32_t>& prompt, int64_t n_new) {
  std::vector<int32_t> out(static_cast<size_t>(n_new));
  int64_t n = 0;
  const Status st =
      c.generate(prompt.data(), int64_t(prompt.size()), n_new, SamplingParams{}, -1, out.data(), &n, nullptr);
  if (!st.is_ok()) throw std::runtime_error(st.message());
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), out.begin(), out.begin() + n);
  return all;
}

}  // namespace kiln::test

// kiln: the command-line tool. compile (checkpoint → plan), inspect, eval (logits for given
// ids) and generate. eval and generate run through the public C API, as a host would.
// Every failure prints one line "kiln: error: ..." on stderr and exits non-zero.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "kiln/kiln.h"
#include "runtime/plan.h"
#include "tools/kiln/run_options.h"
#include "tools/kiln/txt2img.h"

#include <nlohmann/json.hpp>

namespace {

using kiln::CompileError;

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

// RAII holders for the C API handles.
struct PlanHandle {
  kiln_plan* p = nullptr;
  ~PlanHandle() { kiln_plan_close(p); }
};
struct ContextHandle {
  kiln_context* c = nullptr;
  ~ContextHandle() { kiln_context_destroy(c); }
};

void check(kiln_status s, const kiln_error& e) {
  if (s != KILN_OK) throw CompileError(e.message[0] ? e.message : kiln_status_string(s));
}

void open_context(const std::string& plan_path, const RunOptions& ro, PlanHandle& plan, ContextHandle& ctx) {
  kiln_error err{};
  check(kiln_plan_open(plan_path.c_str(), &plan.p, &err), err);
  const kiln_context_options o = to_context_options(ro);
  check(kiln_context_create_with(plan.p, &o, &ctx.c, &err), err);
  // On CUDA the setup is worth a line: the graphs captured (or stream mode) and the GEMM path.
  if (std::string(kiln_context_backend(ctx.c)) == "cuda") std::fprintf(stderr, "%s\n", kiln_context_describe(ctx.c));
}

void add_run_options(CLI::App* cmd, RunOptions& ro) {
  cmd->add_option("--threads", ro.threads, "CPU threads (default: all cores)");
  cmd->add_option("--device", ro.device, "cpu, cuda or auto (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_flag("--no-graphs", ro.no_graphs, "CUDA: replay launch by launch instead of captured graphs (debugging)");
  cmd->add_flag("--no-cublaslt", ro.no_cublaslt, "CUDA: run prefill GEMMs on kiln's own kernels, not cuBLASLt");
}

// generate and chat: how far the decode loop runs ahead of the host.
void add_in_flight_option(CLI::App* cmd, RunOptions& ro) {
  cmd->add_option("--in-flight", ro.in_flight,
                  "Decode steps in flight, each fed its token by the one before on the device (0 = the backend's "
                  "default: CPU 1, CUDA 3)")
      ->check(CLI::Range(0, 16));
}

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a == std::string::npos) throw CompileError("--ids has an empty entry in '" + s + "'");
    item = item.substr(a, b - a + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw CompileError("--ids entry '" + item + "' is not a token id");
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) throw CompileError("--ids is empty: give at least one token id");
  return ids;
}

// --- subcommands ---------------------------------------------------------------------

// Writes PREFIX.h and PREFIX.c embedding the plan file as an aligned byte array, for hosts
// that link a small plan statically (kiln_plan_open_memory on the array).
void emit_c(const std::string& plan_path, const std::string& prefix) {
  std::FILE* in = std::fopen(plan_path.c_str(), "rb");
  if (!in) throw CompileError(plan_path + ": cannot read the plan back");
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), in)) > 0;) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(in);
  std::string base = prefix.substr(prefix.find_last_of('/') + 1);
  std::string ident;
  for (char c : base) ident += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (ident.empty() || std::isdigit(static_cast<unsigned char>(ident[0]))) ident = "p_" + ident;
  const std::string sym = "kiln_plan_" + ident;
  const std::string h_path = prefix + ".h", c_path = prefix + ".c";
  std::FILE* h = std::fopen((h_path + ".tmp").c_str(), "w");
  std::FILE* c = std::fopen((c_path + ".tmp").c_str(), "w");
  if (!h || !c) {
    if (h) std::fclose(h);
    if (c) std::fclose(c);
    throw CompileError(prefix + ": cannot write the C files");
  }
  std::fprintf(h,
               "/* Generated by kiln compile --emit-c: the plan %s, embedded. */\n#ifndef %s_H_\n#define %s_H_\n"
               "#include <stddef.h>\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
               "/* Open with kiln_plan_open_memory(%s, %s_size, ...). 4 KiB aligned, as plans require. */\n"
               "extern const unsigned char %s[];\nextern const size_t %s_size;\n"
               "#ifdef __cplusplus\n}\n#endif\n#endif\n",
               plan_path.c_str(), sym.c_str(), sym.c_str(), sym.c_str(), sym.c_str(), sym.c_str(), sym.c_str());
  std::fprintf(c, "/* Generated by kiln compile --emit-c from %s (%zu bytes). */\n#include \"%s.h\"\n\n"
                  "__attribute__((aligned(4096))) const unsigned char %s[] = {\n",
               plan_path.c_str(), bytes.size(), base.c_str(), sym.c_str());
  for (size_t i = 0; i < bytes.size(); ++i)
    std::fprintf(c, "%s0x%02x,%s", i % 16 ? "" : "  ", bytes[i], i % 16 == 15 ? "\n" : "");
  std::fprintf(c, "\n};\nconst size_t %s_size = %zu;\n", sym.c_str(), bytes.size());
  const bool ok = std::fclose(h) == 0 && std::fclose(c) == 0;
  if (!ok || std::rename((h_path + ".tmp").c_str(), h_path.c_str()) != 0 ||
      std::rename((c_path + ".tmp").c_str(), c_path.c_str()) != 0)
    throw CompileError(prefix + ": cannot write the C files");
}

int run_compile(kiln::CompileOptions o, const std::string& emit_c_prefix) {
  const auto t0 = std::chrono::steady_clock::now();
  if (isatty(2)) {  // a progress line on a terminal only; logs and pipes stay clean
    o.progress = [t0, last = 0.0](uint64_t done, uint64_t total) mutable {
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (t - last < 0.2 && done < total) return;
      last = t;
      std::fprintf(stderr, "\r  writing weights %s / %s (%.0f MB/s)   ", human_bytes(done).c_str(),
                   human_bytes(total).c_str(), t > 0 ? double(done) / 1e6 / t : 0.0);
      if (done >= total) std::fprintf(stderr, "\n");
    };
  }
  const kiln::CompileSummary s = kiln::compile_model(o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("compiled %s -> %s in %.2f s\n", o.model_dir.c_str(), o.output.c_str(), secs);
  if (s.text_to_image)
    std::printf("  dtype %s, text to image\n", kiln::dtype_name(s.plan_dtype));
  else
    std::printf("  dtype %s, max_seq %" PRId64 ", batch %" PRId64 ", chunk %" PRId64 "\n", kiln::dtype_name(s.plan_dtype),
                s.max_seq, s.batch, s.chunk);
  std::string progs;
  for (const auto& [name, n] : s.programs) progs += (progs.empty() ? "" : ", ") + name + " " + std::to_string(n);
  std::printf("  weights %s, persistent %s, arena %s; launches: %s\n", human_bytes(s.weights_bytes).c_str(),
              human_bytes(s.kv_bytes).c_str(), human_bytes(s.arena_bytes).c_str(), progs.c_str());
  if (!s.notes.empty()) std::printf("  note: %s\n", s.notes.c_str());
  std::printf("  tokenizer: %s\n", s.tokenizer.empty() ? "none (ids only)" : s.tokenizer.c_str());
  if (!emit_c_prefix.empty()) {
    emit_c(o.output, emit_c_prefix);
    std::printf("  wrote %s.c and %s.h (the plan as a C byte array)\n", emit_c_prefix.c_str(), emit_c_prefix.c_str());
  }
  for (const auto& a : s.adapters)
    std::printf("  merged LoRA adapter %s (weight %g, xxh3 %016" PRIx64 ")\n", a.name.c_str(), a.weight, a.xxh3);
  return 0;
}

// The same facts as the tables, as one JSON document for tools.
int inspect_json(const std::string& path, const kiln::Plan& p) {
  using nlohmann::json;
  const kiln::ModelInfo& m = p.model();
  const kiln::MemoryInfo& mem = p.memory();
  auto hex = [](uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof(b), "%016" PRIx64, v);
    return std::string(b);
  };
  json j;
  j["plan"] = {{"path", path}, {"file_bytes", p.file_size()}, {"format_version", p.format_version()},
               {"schema_version", p.schema_version()}, {"generator", p.generator()}, {"flatbuffer_bytes", p.fb_size()},
               {"flatbuffer_xxh3", hex(p.fb_xxh3())}};
  j["targets"] = json::array();
  for (const auto& t : p.targets()) j["targets"].push_back({{"backend", t.backend}, {"sm_archs", t.sm_archs}});
  j["model"] = {{"architecture", m.architecture}, {"vocab_size", m.vocab_size}, {"max_seq", m.max_seq},
                {"batch", m.batch}, {"chunk", m.chunk}, {"source_dtype", kiln::dtype_name(m.source_dtype)},
                {"plan_dtype", kiln::dtype_name(m.plan_dtype)}, {"kv_bytes_per_token", m.kv_bytes_per_token},
                {"mha_kv_bytes_per_token", m.mha_kv_bytes_per_token}, {"notes", m.notes}};
  const uint64_t total =
      mem.weights_bytes + mem.kv_bytes + mem.request_bytes + mem.arena_bytes + mem.state_bytes + mem.workspace_bytes;
  j["plan"]["kind"] = kiln::plan_kind_name(p.kind());
  if (p.kind() == kiln::PlanKind::kTextToImage) {
    const kiln::DiffusionInfo& d = p.diffusion();
    j["diffusion"] = {{"height", d.height}, {"width", d.width}, {"steps", d.steps}, {"sampler", d.sampler},
                      {"timestep_spacing", d.timestep_spacing}, {"prediction_type", d.prediction_type},
                      {"guidance", d.guidance}, {"init_noise_sigma", d.init_noise_sigma}, {"text_len", d.text_len},
                      {"control_scale", d.control_scale}, {"vae_scaling_factor", d.vae_scaling_factor},
                      {"components", d.components}};
  }
  j["memory"] = {{"weights", mem.weights_bytes}, {"kv_cache", mem.kv_bytes}, {"request", mem.request_bytes},
                 {"arena", mem.arena_bytes}, {"state", mem.state_bytes}, {"workspace", mem.workspace_bytes},
                 {"total_per_device", total}};
  j["programs"] = json::array();
  for (const auto& pr : p.programs()) {
    json kernels = json::object();
    for (const auto& l : pr.launches) kernels[p.kernels()[l.kernel]->name] = kernels.value(p.kernels()[l.kernel]->name, 0) + 1;
    j["programs"].push_back({{"name", pr.name}, {"launches", pr.launches.size()}, {"kernels", kernels},
                             {"inputs", pr.input_names}, {"outputs", pr.output_names}});
  }
  j["tensors"] = json::array();
  for (const auto& t : p.tensors()) {
    json e = {{"name", t.name}, {"dtype", kiln::dtype_name(t.dtype)}, {"region", kiln::region_name(t.region)},
              {"shape", t.shape}, {"bytes", t.size_bytes}, {"offset", t.offset}};
    if (t.region == kiln::Region::kWeights) {
      e["segment"] = t.segment;
      e["xxh3"] = hex(p.segments()[t.segment].xxh3);
    }
    j["tensors"].push_back(e);
  }
  j["adapters"] = json::array();
  for (const auto& a : p.adapters()) j["adapters"].push_back({{"name", a.name}, {"weight", a.weight}, {"xxh3", hex(a.xxh3)}});
  if (const kiln::Tokenizer* t = p.tokenizer()) {
    const auto& d = t->data();
    j["tokenizer"] = {{"kind", kiln::tokenizer_kind_name(d.kind)},
                      {"vocab_size", t->vocab_size()}, {"merges", d.merges.size()}, {"added_tokens", d.added.size()},
                      {"bos_id", d.bos_id}, {"eos_id", d.eos_id}, {"stop_ids", d.stop_ids},
                      {"chat_format", d.chat == kiln::TokenizerData::Chat::kLlama3     ? "llama3"
                                      : d.chat == kiln::TokenizerData::Chat::kDeepseek ? "deepseek"
                                                                                       : "none"}};
  } else {
    j["tokenizer"] = nullptr;
  }
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// A "verifying" progress line on a terminal, for loads of large plans.
kiln::Plan::Progress load_progress() {
  if (!isatty(2)) return nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  return [t0, last = 0.0](uint64_t done, uint64_t total) mutable {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t < 0.5 || (t - last < 0.2 && done < total)) return;  // quiet for small plans
    last = t;
    std::fprintf(stderr, "\r  verifying weights %s / %s   ", human_bytes(done).c_str(), human_bytes(total).c_str());
    if (done >= total) std::fprintf(stderr, "\n");
  };
}

int run_inspect(const std::string& path, bool list_tensors, bool as_json) {
  auto r = kiln::Plan::load_file(path, load_progress());
  if (!r.is_ok()) throw CompileError(r.status().message());
  const kiln::Plan& p = *r.value();
  if (as_json) return inspect_json(path, p);
  const kiln::ModelInfo& m = p.model();
  const kiln::MemoryInfo& mem = p.memory();
  std::printf("plan       %s (%s, verified)\n", path.c_str(), human_bytes(p.file_size()).c_str());
  std::printf("format     v%u, schema v%u, made by %s\n", p.format_version(), p.schema_version(), p.generator().c_str());
  std::printf("flatbuf    %s, xxh3 %016" PRIx64 "\n", human_bytes(p.fb_size()).c_str(), p.fb_xxh3());
  std::string targets;
  for (const auto& t : p.targets()) {
    targets += (targets.empty() ? "" : ", ") + t.backend;
    for (uint32_t sm : t.sm_archs) targets += " sm_" + std::to_string(sm);
  }
  std::printf("targets    %s\n", targets.c_str());
  std::printf("model      %s, vocab %" PRId64 ", source dtype %s, plan dtype %s\n", m.architecture.c_str(), m.vocab_size,
              kiln::dtype_name(m.source_dtype), kiln::dtype_name(m.plan_dtype));
  if (p.kind() == kiln::PlanKind::kTextToImage) {
    const kiln::DiffusionInfo& d = p.diffusion();
    std::printf("image      %" PRId64 "x%" PRId64 ", %" PRId64 " steps of %s (%s timesteps, %s prediction), guidance %g, "
                "prompt %" PRId64 " tokens%s\n",
                d.width, d.height, d.steps, d.sampler.c_str(), d.timestep_spacing.c_str(), d.prediction_type.c_str(),
                d.guidance, d.text_len,
                std::find(d.components.begin(), d.components.end(), "controlnet") != d.components.end() ? ", ControlNet"
                                                                                                       : "");
  } else {
    std::printf("limits     max_seq %" PRId64 ", batch %" PRId64 ", prefill chunk %" PRId64 "\n", m.max_seq, m.batch, m.chunk);
  }
  const uint64_t total =
      mem.weights_bytes + mem.kv_bytes + mem.request_bytes + mem.arena_bytes + mem.state_bytes + mem.workspace_bytes;
  std::printf("memory     weights %s | %s %s | arena %s | state %s | workspace %s | total %s\n",
              human_bytes(mem.weights_bytes).c_str(), p.kind() == kiln::PlanKind::kLlm ? "KV cache" : "request",
              human_bytes(p.kind() == kiln::PlanKind::kLlm ? mem.kv_bytes : mem.request_bytes).c_str(),
              human_bytes(mem.arena_bytes).c_str(), human_bytes(mem.state_bytes).c_str(),
              human_bytes(mem.workspace_bytes).c_str(), human_bytes(total).c_str());
  if (m.kv_bytes_per_token > 0)
    std::printf("kv/token   %s (multi-head K/V would need %s, %.1fx more)\n", human_bytes(m.kv_bytes_per_token).c_str(),
                human_bytes(m.mha_kv_bytes_per_token).c_str(),
                double(m.mha_kv_bytes_per_token) / double(m.kv_bytes_per_token));
  if (!m.notes.empty()) std::printf("notes      %s\n", m.notes.c_str());
  std::printf("tensors    %zu, in %zu weight segments (each xxh3-checked)\n", p.tensors().size(), p.segments().size());
  if (const kiln::Tokenizer* t = p.tokenizer()) {
    const auto& d = t->data();
    std::printf("tokenizer  %s, %d tokens, %zu merges, %zu added, bos %d, eos %d, chat %s\n",
                kiln::tokenizer_kind_name(d.kind), t->vocab_size(),
                d.merges.size(), d.added.size(), d.bos_id, d.eos_id,
                d.chat == kiln::TokenizerData::Chat::kLlama3     ? "LLaMA-3"
                : d.chat == kiln::TokenizerData::Chat::kDeepseek ? "DeepSeek"
                : p.chat_template().empty()                      ? "none"
                                                                 : "unrecognized template (use --raw)");
  } else {
    std::printf("tokenizer  none (ids only)\n");
  }
  if (p.adapters().empty()) std::printf("adapters   none\n");
  for (const auto& a : p.adapters())
    std::printf("adapter    %s, weight %g, xxh3 %016" PRIx64 " (LoRA, merged at compile time)\n", a.name.c_str(), a.weight, a.xxh3);
  for (const auto& pr : p.programs()) {
    std::map<std::string, int> counts;
    for (const auto& l : pr.launches) counts[p.kernels()[l.kernel]->name]++;
    std::string ks;
    for (const auto& [k, n] : counts) ks += (ks.empty() ? "" : ", ") + k + " x" + std::to_string(n);
    std::printf("program    %-8s %4zu launches: %s\n", pr.name.c_str(), pr.launches.size(), ks.c_str());
  }
  if (list_tensors) {
    std::printf("\n%-48s %-5s %-9s %-20s %s\n", "tensor", "dtype", "region", "shape", "segment/offset");
    for (const auto& t : p.tensors()) {
      const std::string shape = kiln::shape_str(t.shape);
      std::string where = t.region == kiln::Region::kWeights
                              ? "seg " + std::to_string(t.segment) + " xxh3 " +
                                    [&] {
                                      char b[20];
                                      std::snprintf(b, sizeof(b), "%016" PRIx64, p.segments()[t.segment].xxh3);
                                      return std::string(b);
                                    }()
                              : "+" + std::to_string(t.offset);
      std::printf("%-48s %-5s %-9s %-20s %s\n", t.name.c_str(), kiln::dtype_name(t.dtype), kiln::region_name(t.region),
                  shape.c_str(), where.c_str());
    }
  }
  return 0;
}

int run_eval(const std::string& plan_path, const std::string& in_path, const std::string& out_path, const RunOptions& ro) {
  auto in = kiln::SafetensorsFile::open(in_path);
  auto it = in->tensors().find("input_ids");
  if (it == in->tensors().end()) throw CompileError(in_path + ": has no 'input_ids' tensor");
  const kiln::StTensor& t = it->second;
  if (!t.has_dtype || (t.dtype != kiln::DType::I64 && t.dtype != kiln::DType::I32))
    throw CompileError(in_path + ": input_ids must be I64 or I32, not " + t.st_dtype);
  if (t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0)
    throw CompileError(in_path + ": input_ids must have shape [batch, tokens] with both > 0");
  const int64_t rows = t.shape[0], n = t.shape[1];
  std::vector<int32_t> ids(size_t(rows * n));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v = 0;
    if (t.dtype == kiln::DType::I64) std::memcpy(&v, t.data + i * 8, 8);
    else {
      int32_t v32;
      std::memcpy(&v32, t.data + i * 4, 4);
      v = v32;
    }
    if (v < 0 || v > INT32_MAX)
      throw CompileError(in_path + ": input_ids[" + std::to_string(i / size_t(n)) + ", " + std::to_string(i % size_t(n)) +
                         "] = " + std::to_string(v) + " is not a token id");
    ids[i] = int32_t(v);
  }
  PlanHandle plan;
  ContextHandle ctx;
  open_context(plan_path, ro, plan, ctx);
  kiln_plan_info info;
  kiln_error err{};
  check(kiln_plan_get_info(plan.p, &info, &err), err);
  if (n > info.max_seq)
    throw CompileError(in_path + ": " + std::to_string(n) + " tokens per row exceed the plan's max_seq of " +
                       std::to_string(info.max_seq));
  if (double(rows) * double(n) * double(info.vocab_size) * 4.0 > 64.0 * double(1ull << 30))
    throw CompileError(in_path + ": the logits would take over 64 GiB; score fewer rows at a time");
  std::vector<float> logits(size_t(rows * n * info.vocab_size));
  check(kiln_score(ctx.c, ids.data(), rows, n, logits.data(), &err), err);
  kiln::write_safetensors(out_path, {{"logits", kiln::DType::F32, {rows, n, info.vocab_size}, logits.data(),
                                      uint64_t(logits.size() * sizeof(float))}});
  std::fprintf(stderr, "wrote logits [%" PRId64 ", %" PRId64 ", %" PRId64 "] to %s\n", rows, n, info.vocab_size,
               out_path.c_str());
  return 0;
}

struct GenerateArgs {
  std::string plan, ids, prompt;
  std::vector<std::string> stops;
  bool ignore_stop = false;
  int64_t max_new = 32;
  float temperature = 0.0f, top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  int64_t eos = -1;
  bool output_ids = false;
  RunOptions run;
};

// Text out of generated ids: streams through the plan's decoder, holding back text that might
// be the start of a stop string, and stops at stop tokens and stop strings.
class TextSink {
 public:
  TextSink(kiln_plan* plan, std::vector<std::string> stops, bool ignore_stop, bool echo)
      : plan_(plan), stops_(std::move(stops)), ignore_stop_(ignore_stop), echo_(echo) {
    kiln_error err{};
    check(kiln_decoder_create(plan, /*skip_special=*/1, &dec_, &err), err);
    for (const auto& s : stops_) hold_ = std::max(hold_, s.size());
  }
  ~TextSink() { kiln_decoder_destroy(dec_); }
  // False once generation should stop.
  bool push(int32_t id) {
    if (!ignore_stop_ && kiln_token_is_stop(plan_, id)) return false;
    char buf[1024];
    size_t len = 0;
    kiln_error err{};
    if (kiln_decoder_push(dec_, id, buf, sizeof(buf), &len, &err) != KILN_OK) return false;
    pending_.append(buf, std::min(len, sizeof(buf) - 1));
    for (const auto& s : stops_) {
      const size_t at = pending_.find(s);
      if (!s.empty() && at != std::string::npos) {
        emit(pending_.substr(0, at));
        pending_.clear();
        return false;
      }
    }
    if (pending_.size() > hold_) {
      // Keep the last hold_ bytes (a stop string may be starting), but never split a UTF-8 sequence.
      size_t cut = pending_.size() - hold_;
      while (cut > 0 && (uint8_t(pending_[cut]) & 0xC0) == 0x80) --cut;
      emit(pending_.substr(0, cut));
      pending_.erase(0, cut);
    }
    return true;
  }
  void finish() {
    emit(pending_);
    pending_.clear();
  }
  const std::string& text() const { return text_; }

 private:
  void emit(const std::string& s) {
    text_ += s;
    if (echo_ && !s.empty()) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  }
  kiln_plan* plan_;
  kiln_decoder* dec_ = nullptr;
  std::vector<std::string> stops_;
  bool ignore_stop_, echo_;
  size_t hold_ = 0;
  std::string pending_, text_;
};

// One encode: a token covers at least one byte of the text, so bytes plus a few specials (BOS,
// EOS, a prepended "▁") always fit; a second call only if a tokenizer ever needed more.
std::vector<int32_t> tokenize(kiln_plan* plan, const std::string& text, bool add_special) {
  kiln_error err{};
  int64_t n = 0;
  std::vector<int32_t> ids(text.size() + 16);
  check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), int64_t(ids.size()), &n, &err), err);
  if (n > int64_t(ids.size())) {
    ids.resize(size_t(n));
    check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), n, &n, &err), err);
  }
  ids.resize(size_t(n));
  return ids;
}

int run_generate(const GenerateArgs& a) {
  if (a.ids.empty() == a.prompt.empty()) throw CompileError("give exactly one of --ids and -p/--prompt");
  if (a.max_new < 0) throw CompileError("--max-new-tokens must not be negative");
  PlanHandle plan;
  ContextHandle ctx;
  open_context(a.plan, a.run, plan, ctx);
  const bool text_mode = !a.prompt.empty();
  const std::vector<int32_t> prompt = text_mode ? tokenize(plan.p, a.prompt, true) : parse_ids(a.ids);
  if (prompt.empty()) throw CompileError("the prompt is empty after tokenization");
  kiln_sampling s{a.temperature, a.top_k, a.top_p, a.seed};
  std::vector<int32_t> out(size_t(a.max_new));
  int64_t n_out = 0;
  kiln_error err{};
  struct Stream {
    bool ids_on;
    bool first = true;
    TextSink* text;
  };
  std::unique_ptr<TextSink> sink;
  if (text_mode) sink = std::make_unique<TextSink>(plan.p, a.stops, a.ignore_stop, !a.output_ids);
  Stream stream{!a.output_ids && !text_mode, true, sink.get()};
  auto cb = [](void* user, int32_t tok) -> int {
    auto* st = static_cast<Stream*>(user);
    if (st->text) return st->text->push(tok) ? 1 : 0;
    if (st->ids_on) {
      std::printf(st->first ? "%d" : " %d", tok);
      std::fflush(stdout);
      st->first = false;
    }
    return 1;
  };
  const auto t0 = std::chrono::steady_clock::now();
  check(kiln_generate(ctx.c, prompt.data(), int64_t(prompt.size()), a.max_new, &s, int32_t(a.eos), out.data(), &n_out, cb,
                      &stream, &err),
        err);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (sink) sink->finish();
  if (!a.output_ids) std::printf("\n");
  std::fflush(stdout);  // keep the text and the stderr summary in order when both go to one pipe
  std::fprintf(stderr, "generated %" PRId64 " tokens in %.3f s on %s\n", n_out, secs, kiln_context_backend(ctx.c));
  if (a.output_ids) {
    std::string line;
    for (int32_t t : prompt) line += (line.empty() ? "" : " ") + std::to_string(t);
    for (int64_t i = 0; i < n_out; ++i) line += " " + std::to_string(out[size_t(i)]);
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

struct ChatArgs {
  std::string plan, system;
  int64_t max_new = 256;
  float temperature = 0.7f, top_p = 0.9f;
  int top_k = 0;
  uint64_t seed = 0;
  bool raw = false;
  RunOptions run;
};

// Interactive chat: each line on stdin is a user turn; the reply streams to stdout. The
// whole conversation is re-encoded each turn in the model's chat format (or as plain text
// with --raw).
int run_chat(const ChatArgs& a) {
  PlanHandle plan;
  ContextHandle ctx;
  open_context(a.plan, a.run, plan, ctx);
  std::vector<std::string> roles, contents;
  if (!a.system.empty()) roles.push_back("system"), contents.push_back(a.system);
  std::string raw_text;
  const bool tty = isatty(0);
  kiln_error err{};
  if (!a.raw) {  // fail early, with the template message, if the format is unknown
    const char* r = "user";
    const char* c = "";
    check(kiln_chat_prompt(plan.p, &r, &c, 1, nullptr, 0, nullptr, &err), err);
  }
  std::string line;
  for (uint64_t turn = 0;; ++turn) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    std::string prompt_text;
    if (a.raw) {
      raw_text += line + "\n";
      prompt_text = raw_text;
    } else {
      roles.push_back("user");
      contents.push_back(line);
      std::vector<const char*> rp, cp;
      for (size_t i = 0; i < roles.size(); ++i) rp.push_back(roles[i].c_str()), cp.push_back(contents[i].c_str());
      size_t len = 0;
      check(kiln_chat_prompt(plan.p, rp.data(), cp.data(), int64_t(rp.size()), nullptr, 0, &len, &err), err);
      std::string buf(len + 1, '\0');
      check(kiln_chat_prompt(plan.p, rp.data(), cp.data(), int64_t(rp.size()), buf.data(), buf.size(), &len, &err), err);
      prompt_text.assign(buf.data(), len);
    }
    const std::vector<int32_t> ids = tokenize(plan.p, prompt_text, a.raw);
    TextSink sink(plan.p, a.raw ? std::vector<std::string>{"\n"} : std::vector<std::string>{}, false, true);
    kiln_sampling s{a.temperature, a.top_k, a.top_p, a.seed + turn};
    std::vector<int32_t> out(size_t(a.max_new));
    int64_t n = 0;
    auto cb = [](void* user, int32_t tok) -> int { return static_cast<TextSink*>(user)->push(tok) ? 1 : 0; };
    kiln_plan_info info;
    check(kiln_plan_get_info(plan.p, &info, &err), err);
    const int64_t budget = std::min<int64_t>(a.max_new, info.max_seq - int64_t(ids.size()));
    if (budget <= 0) {
      std::fprintf(stderr, "kiln: the conversation has reached the plan's max_seq of %" PRId64 "; starting over\n",
                   info.max_seq);
      roles.resize(a.system.empty() ? 0 : 1), contents.resize(roles.size()), raw_text.clear();
      continue;
    }
    check(kiln_generate(ctx.c, ids.data(), int64_t(ids.size()), budget, &s, -1, out.data(), &n, cb, &sink, &err), err);
    sink.finish();
    std::printf("\n");
    std::fflush(stdout);
    if (a.raw) raw_text += sink.text() + "\n";
    else roles.push_back("assistant"), contents.push_back(sink.text());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln: ahead-of-time model compiler and runtime"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION_STRING);
  app.require_subcommand(1);

  kiln::CompileOptions co;
  auto* compile = app.add_subcommand("compile", "Compile a checkpoint folder into a plan file");
  compile->add_option("model_dir", co.model_dir, "Checkpoint folder (config.json, *.safetensors)")->required();
  compile->add_option("-o,--output", co.output, "Plan file to write")->required();
  compile->add_option("--dtype", co.dtype, "Weight/KV dtype: f32, bf16 or f16 (default: the checkpoint's)");
  compile->add_option("--max-seq", co.max_seq, "Tokens per sequence (default: min(max_position_embeddings, 2048))");
  compile->add_option("--batch", co.batch, "Sequences per replay (default 1)");
  compile->add_option("--chunk", co.chunk, "Prompt tokens per prefill replay (default: min(64, max-seq))");
  std::string emit_c_prefix;
  compile->add_option("--emit-c", emit_c_prefix, "Also write PREFIX.c/PREFIX.h embedding the plan as a byte array");
  compile->add_flag("--no-tokenizer", co.no_tokenizer, "Leave the tokenizer out (the plan then takes token ids only)");
  compile->add_option("--target", co.target, "Backends to compile for: cpu, cuda (sm_90) or all (default)")
      ->check(CLI::IsMember({"cpu", "cuda", "all"}));
  std::vector<std::string> lora_args;
  compile->add_option("--lora", lora_args, "PEFT LoRA adapter folder to merge, DIR or DIR:WEIGHT (repeatable)");
  // Diffusion pipelines (folders with model_index.json)
  compile->add_option("--height", co.height, "Diffusion: image height in pixels (default: the UNet's sample_size x 8)");
  compile->add_option("--width", co.width, "Diffusion: image width in pixels (default: the UNet's sample_size x 8)");
  compile->add_option("--steps", co.steps, "Diffusion: denoising steps (default 30)");
  compile->add_option("--sampler", co.sampler, "Diffusion: ddim, euler (default), euler_a, dpmpp_2m, vp_sde or pf_ode");
  compile->add_option("--guidance", co.guidance, "Diffusion: classifier-free guidance scale (default 7.5; <= 1: none)");
  compile->add_option("--controlnet", co.controlnet, "Diffusion: a ControlNetModel folder to compile in");
  compile->add_option("--control-scale", co.control_scale, "Diffusion: ControlNet conditioning scale (default 1)");

  std::string inspect_path;
  bool list_tensors = false;
  auto* inspect = app.add_subcommand("inspect", "Verify a plan and print its programs, memory and hashes");
  inspect->add_option("plan", inspect_path, "Plan file")->required();
  inspect->add_flag("--tensors", list_tensors, "Also list every tensor");
  bool inspect_as_json = false;
  inspect->add_flag("--json", inspect_as_json, "Print everything as one JSON document");

  std::string eval_plan, eval_in, eval_out;
  RunOptions eval_run;
  auto* eval = app.add_subcommand("eval", "Logits for every position of the prompts in a safetensors file");
  eval->add_option("plan", eval_plan, "Plan file")->required();
  eval->add_option("--input", eval_in, "safetensors with input_ids (int64 or int32, [batch, tokens])")->required();
  eval->add_option("--output", eval_out, "safetensors to write logits (float32, [batch, tokens, vocab]) to")->required();
  add_run_options(eval, eval_run);

  GenerateArgs ga;
  auto* gen = app.add_subcommand("generate", "Generate tokens after a prompt of token ids");
  gen->add_option("plan", ga.plan, "Plan file")->required();
  gen->add_option("--ids", ga.ids, "Prompt token ids, comma-separated");
  gen->add_option("-p,--prompt", ga.prompt, "Prompt text (needs a plan with a tokenizer); the reply streams as text");
  gen->add_option("--stop", ga.stops, "Stop when the generated text contains this string (repeatable)");
  gen->add_flag("--ignore-eos", ga.ignore_stop, "Do not stop at the tokenizer's end-of-sequence tokens");
  gen->add_option("--max-new-tokens", ga.max_new, "Tokens to generate (default 32)");
  gen->add_option("--temperature", ga.temperature, "0 = greedy (default)");
  gen->add_option("--top-k", ga.top_k, "Keep the k most likely tokens (0 = off)");
  gen->add_option("--top-p", ga.top_p, "Nucleus sampling mass (1 = off)");
  gen->add_option("--seed", ga.seed, "Sampling seed (default 0)");
  gen->add_option("--eos", ga.eos, "Stop after this token id (default: none)");
  gen->add_flag("--output-ids", ga.output_ids, "Print prompt + generated ids as the last line");
  add_run_options(gen, ga.run);
  add_in_flight_option(gen, ga.run);

  ChatArgs ca;
  auto* chat = app.add_subcommand("chat", "Chat interactively in the model's chat format (one user turn per line)");
  chat->add_option("plan", ca.plan, "Plan file")->required();
  chat->add_option("--system", ca.system, "System message");
  chat->add_option("--max-new-tokens", ca.max_new, "Longest reply in tokens (default 256)");
  chat->add_option("--temperature", ca.temperature, "Sampling temperature (default 0.7; 0 = greedy)");
  chat->add_option("--top-k", ca.top_k, "Keep the k most likely tokens (0 = off)");
  chat->add_option("--top-p", ca.top_p, "Nucleus sampling mass (default 0.9)");
  chat->add_option("--seed", ca.seed, "Sampling seed");
  chat->add_flag("--raw", ca.raw, "No chat template: plain text in, plain text out (for models without one)");
  add_run_options(chat, ca.run);
  add_in_flight_option(chat, ca.run);

  Txt2ImgArgs ta;
  auto* t2i = app.add_subcommand("txt2img", "Generate an image from a text-to-image plan (a compiled diffusers pipeline)");
  t2i->add_option("plan", ta.plan, "Plan file")->required();
  t2i->add_option("-p,--prompt", ta.prompt, "What to draw")->required();
  t2i->add_option("--negative", ta.negative, "Negative prompt (default empty; needs guidance > 1 at compile time)");
  t2i->add_option("--seed", ta.seed, "Noise seed (default 0); the same seed gives the same image on every backend");
  t2i->add_option("-o,--output", ta.output, "PNG file to write")->required();
  t2i->add_option("--control", ta.control, "Control image (PNG) for a plan compiled with --controlnet");
  add_run_options(t2i, ta.run);
  t2i->add_flag("--progress", ta.progress, "Report each step on stderr (replays step by step instead of the whole loop at once)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*compile) {
      for (const std::string& a : lora_args) co.lora.push_back(kiln::parse_lora_spec(a));
      return run_compile(co, emit_c_prefix);
    }
    if (*inspect) return run_inspect(inspect_path, list_tensors, inspect_as_json);
    if (*eval) return run_eval(eval_plan, eval_in, eval_out, eval_run);
    if (*gen) return run_generate(ga);
    if (*chat) return run_chat(ca);
    if (*t2i) return run_txt2img(ta);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  }
  return 1;
}

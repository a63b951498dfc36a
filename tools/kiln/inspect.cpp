// kiln inspect: verify a plan, then print its facts (or --json).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>

#include "compiler/error.h"
#include "runtime/plan.h"
#include "runtime/text.h"
#include "tools/kiln/commands.h"

using kiln::CompileError;

namespace {

// The weight tensors' bytes and count per dtype (i8: quantized, with their f32 scales counted as f32).
std::map<std::string, std::pair<uint64_t, int>> weights_by_dtype(const kiln::Plan& p) {
  std::map<std::string, std::pair<uint64_t, int>> out;
  for (const kiln::TensorInfo& t : p.tensors())
    if (t.region == kiln::Region::kWeights) {
      auto& e = out[kiln::dtype_name(t.dtype)];
      e.first += t.size_bytes;
      ++e.second;
    }
  return out;
}

// How the plan's quantized weights are quantized (kiln compile --quantize, or a checkpoint's own): per
// scheme ("int8, a scale per row", "int4, a scale per 128 values"), the weights, their bytes and their
// scales' bytes, from the launches that read them (matmul version 2 and 3: w and its w_scale, version 4
// also w_zero; moe_experts version 2: w_gu and w_down and their scales, version 3 also their zero
// points, version 4 either; head_matmul version 2: w, w_scale and w_zero, DeepSeek's W_UK and W_UV rows of kv_b). A
// "weight" is a plan tensor: all of a layer's experts' w_gu rows are one.
struct QuantScheme {
  std::string dtype;
  int64_t group = 0;        // values per scale (int4, fp8 in groups); 0: one scale a row
  bool asymmetric = false;  // int4 with zero points (matmul version 4, moe_experts version 3)
  int weights = 0;
  uint64_t bytes = 0, scale_bytes = 0, zero_bytes = 0;
};
std::vector<QuantScheme> quantized_weights(const kiln::Plan& p) {
  std::map<std::tuple<std::string, int64_t, bool>, QuantScheme> by;
  std::set<uint32_t> seen;
  // Weight tensor wi with scales si, the group attribute (-1: none, as matmul version 2 has), and its
  // zero points zi (matmul version 4, moe_experts version 3) or kNoTensor.
  auto add = [&](uint32_t wi, uint32_t si, int64_t attr, uint32_t zi) {
    if (si == kiln::kNoTensor || !seen.insert(wi).second) return;
    const kiln::TensorInfo& w = p.tensors()[wi];
    const kiln::TensorInfo& sc = p.tensors()[si];
    // (verified shapes and attributes) i4: k / groups; f8e4m3: the group attribute, k for one a row
    const int64_t k = w.dtype == kiln::DType::I4 ? 2 * w.shape[1] : w.shape[1];
    int64_t group = w.dtype == kiln::DType::I4 ? k / sc.shape[1] : 0;
    if (w.dtype == kiln::DType::F8E4M3 && attr > 0 && attr < k) group = attr;
    QuantScheme& q = by[{kiln::dtype_name(w.dtype), group, zi != kiln::kNoTensor}];
    q.dtype = kiln::dtype_name(w.dtype);
    q.group = group;
    q.asymmetric = zi != kiln::kNoTensor;
    ++q.weights;
    q.bytes += w.size_bytes;
    q.scale_bytes += sc.size_bytes;
    if (q.asymmetric) q.zero_bytes += p.tensors()[zi].size_bytes;
  };
  for (const kiln::ProgramInfo& prog : p.programs())
    for (const kiln::LaunchInfo& l : prog.launches) {
      const std::string name = p.kernels()[l.kernel]->name;
      if (name == "matmul" && l.inputs.size() >= 5)
        add(l.inputs[1], l.inputs[4], l.int_attrs.size() > 1 ? l.int_attrs[1] : -1,
            l.inputs.size() > 5 ? l.inputs[5] : kiln::kNoTensor);
      else if (name == "moe_experts" && l.inputs.size() >= 8 && l.int_attrs.size() >= 2) {
        add(l.inputs[3], l.inputs[6], l.int_attrs[0], l.inputs.size() > 8 ? l.inputs[8] : kiln::kNoTensor);
        add(l.inputs[4], l.inputs[7], l.int_attrs[1], l.inputs.size() > 9 ? l.inputs[9] : kiln::kNoTensor);
      } else if (name == "head_matmul" && l.int_attrs.size() == 3 && l.inputs.size() >= 4) {  // (version 2)
        add(l.inputs[1], l.inputs[3], l.int_attrs[2], l.inputs.size() > 4 ? l.inputs[4] : kiln::kNoTensor);
      }
    }
  std::vector<QuantScheme> out;
  for (const auto& kv : by) out.push_back(kv.second);
  return out;
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
  j["plan"] = {{"path", kiln::text::lossy_utf8(path)},  // JSON text is UTF-8; a path need not be
               {"file_bytes", p.file_size()},          {"format_version", p.format_version()},
               {"schema_version", p.schema_version()}, {"generator", p.generator()},
               {"flatbuffer_bytes", p.fb_size()},      {"flatbuffer_xxh3", hex(p.fb_xxh3())}};
  j["targets"] = json::array();
  for (const auto& t : p.targets()) j["targets"].push_back({{"backend", t.backend}, {"sm_archs", t.sm_archs}});
  j["model"] = {{"architecture", m.architecture},
                {"vocab_size", m.vocab_size},
                {"max_seq", m.max_seq},
                {"batch", m.batch},
                {"chunk", m.chunk},
                {"source_dtype", kiln::dtype_name(m.source_dtype)},
                {"plan_dtype", kiln::dtype_name(m.plan_dtype)},
                {"kv_bytes_per_token", m.kv_bytes_per_token},
                {"mha_kv_bytes_per_token", m.mha_kv_bytes_per_token},
                {"notes", m.notes}};
  const uint64_t total =
      mem.weights_bytes + mem.kv_bytes + mem.request_bytes + mem.arena_bytes + mem.state_bytes + mem.workspace_bytes;
  j["plan"]["kind"] = kiln::plan_kind_name(p.kind());
  if (p.kind() == kiln::PlanKind::kTextToImage) {
    const kiln::DiffusionInfo& d = p.diffusion();
    j["diffusion"] = {{"height", d.height},
                      {"width", d.width},
                      {"steps", d.steps},
                      {"sampler", d.sampler},
                      {"timestep_spacing", d.timestep_spacing},
                      {"prediction_type", d.prediction_type},
                      {"guidance", d.guidance},
                      {"init_noise_sigma", d.init_noise_sigma},
                      {"text_len", d.text_len},
                      {"control_scale", d.control_scale},
                      {"vae_scaling_factor", d.vae_scaling_factor},
                      {"components", d.components}};
  }
  for (const auto& [dt, e] : weights_by_dtype(p))
    j["weights_by_dtype"][dt] = {{"bytes", e.first}, {"tensors", e.second}};
  j["quantized"] = json::array();
  for (const QuantScheme& q : quantized_weights(p))
    j["quantized"].push_back({{"dtype", q.dtype},
                              {"group", q.group},
                              {"asymmetric", q.asymmetric},
                              {"weights", q.weights},
                              {"bytes", q.bytes},
                              {"scale_bytes", q.scale_bytes},
                              {"zero_bytes", q.zero_bytes}});
  j["memory"] = {{"weights", mem.weights_bytes}, {"kv_cache", mem.kv_bytes}, {"request", mem.request_bytes},
                 {"arena", mem.arena_bytes},     {"state", mem.state_bytes}, {"workspace", mem.workspace_bytes},
                 {"total_per_device", total}};
  j["programs"] = json::array();
  for (const auto& pr : p.programs()) {
    json kernels = json::object();
    for (const auto& l : pr.launches)
      kernels[p.kernels()[l.kernel]->name] = kernels.value(p.kernels()[l.kernel]->name, 0) + 1;
    j["programs"].push_back({{"name", pr.name},
                             {"launches", pr.launches.size()},
                             {"kernels", kernels},
                             {"inputs", pr.input_names},
                             {"outputs", pr.output_names}});
  }
  j["tensors"] = json::array();
  for (const auto& t : p.tensors()) {
    json e = {{"name", t.name},
              {"dtype", kiln::dtype_name(t.dtype)},
              {"region", kiln::region_name(t.region)},
              {"shape", t.shape},
              {"bytes", t.size_bytes},
              {"offset", t.offset}};
    if (t.region == kiln::Region::kWeights) {
      e["segment"] = t.segment;
      e["xxh3"] = hex(p.segments()[t.segment].xxh3);
    }
    j["tensors"].push_back(e);
  }
  j["adapters"] = json::array();
  for (const auto& a : p.adapters())
    j["adapters"].push_back({{"name", a.name}, {"weight", a.weight}, {"xxh3", hex(a.xxh3)}});
  if (const kiln::Tokenizer* t = p.tokenizer()) {
    const auto& d = t->data();
    j["tokenizer"] = {
        {"kind", kiln::tokenizer_kind_name(d.kind)},
        {"vocab_size", t->vocab_size()},
        {"merges", d.merges.size()},
        {"added_tokens", d.added.size()},
        {"bos_id", d.bos_id},
        {"eos_id", d.eos_id},
        {"stop_ids", d.stop_ids},
        {"chat_template", t->has_chat_template() ? nlohmann::json(d.chat_template) : nlohmann::json()},
        {"chat_vars", t->has_chat_template()
                          ? nlohmann::json::parse(d.chat_vars.empty() ? "{}" : d.chat_vars, nullptr, false)
                          : nlohmann::json()}};
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

}  // namespace

int run_inspect(const std::string& path, bool list_tensors, bool as_json) {
  auto r = kiln::Plan::load_file(path, load_progress());
  if (!r.is_ok()) throw CompileError(r.status().message());
  const kiln::Plan& p = *r.value();
  if (as_json) return inspect_json(path, p);
  const kiln::ModelInfo& m = p.model();
  const kiln::MemoryInfo& mem = p.memory();
  std::printf("plan       %s (%s, verified)\n", path.c_str(), human_bytes(p.file_size()).c_str());
  std::printf("format     v%u, schema v%u, made by %s\n", p.format_version(), p.schema_version(),
              p.generator().c_str());
  std::printf("flatbuf    %s, xxh3 %016" PRIx64 "\n", human_bytes(p.fb_size()).c_str(), p.fb_xxh3());
  std::string targets;
  for (const auto& t : p.targets()) {
    targets += (targets.empty() ? "" : ", ") + t.backend;
    for (uint32_t sm : t.sm_archs) targets += " sm_" + std::to_string(sm);
  }
  std::printf("targets    %s\n", targets.c_str());
  std::printf("model      %s, vocab %" PRId64 ", source dtype %s, plan dtype %s\n", m.architecture.c_str(),
              m.vocab_size, kiln::dtype_name(m.source_dtype), kiln::dtype_name(m.plan_dtype));
  if (p.kind() == kiln::PlanKind::kTextToImage) {
    const kiln::DiffusionInfo& d = p.diffusion();
    std::printf(
        "image      %" PRId64 "x%" PRId64 ", %" PRId64
        " steps of %s (%s timesteps, %s prediction), guidance %g, "
        "prompt %" PRId64 " tokens%s\n",
        d.width, d.height, d.steps, d.sampler.c_str(), d.timestep_spacing.c_str(), d.prediction_type.c_str(),
        d.guidance, d.text_len,
        std::find(d.components.begin(), d.components.end(), "controlnet") != d.components.end() ? ", ControlNet" : "");
  } else {
    std::printf("limits     max_seq %" PRId64 ", batch %" PRId64 ", prefill chunk %" PRId64 "\n", m.max_seq, m.batch,
                m.chunk);
  }
  const uint64_t total =
      mem.weights_bytes + mem.kv_bytes + mem.request_bytes + mem.arena_bytes + mem.state_bytes + mem.workspace_bytes;
  std::printf("memory     weights %s | %s %s | arena %s | state %s | workspace %s | total %s\n",
              human_bytes(mem.weights_bytes).c_str(), p.kind() == kiln::PlanKind::kLlm ? "KV cache" : "request",
              human_bytes(p.kind() == kiln::PlanKind::kLlm ? mem.kv_bytes : mem.request_bytes).c_str(),
              human_bytes(mem.arena_bytes).c_str(), human_bytes(mem.state_bytes).c_str(),
              human_bytes(mem.workspace_bytes).c_str(), human_bytes(total).c_str());
  std::string by_dtype;
  for (const auto& [dt, e] : weights_by_dtype(p))
    by_dtype +=
        (by_dtype.empty() ? "" : ", ") + dt + " " + human_bytes(e.first) + " (" + std::to_string(e.second) + ")";
  std::printf("weights    by dtype (tensors): %s\n", by_dtype.empty() ? "none" : by_dtype.c_str());
  for (const QuantScheme& q : quantized_weights(p)) {
    const std::string per = q.group > 0 ? std::to_string(q.group) + " values" : "row";
    const std::string zeros = q.asymmetric ? " + " + human_bytes(q.zero_bytes) + " of i8 zero points" : "";
    std::printf("quantized  %s%s, a scale%s per %s: %d weights, %s + %s of f32 scales%s\n", q.dtype.c_str(),
                q.asymmetric ? " asymmetric" : "", q.asymmetric ? " and a zero point" : "", per.c_str(), q.weights,
                human_bytes(q.bytes).c_str(), human_bytes(q.scale_bytes).c_str(), zeros.c_str());
  }
  if (m.kv_bytes_per_token > 0)
    std::printf("kv/token   %s (multi-head K/V would need %s, %.1fx more)\n", human_bytes(m.kv_bytes_per_token).c_str(),
                human_bytes(m.mha_kv_bytes_per_token).c_str(),
                double(m.mha_kv_bytes_per_token) / double(m.kv_bytes_per_token));
  if (!m.notes.empty()) std::printf("notes      %s\n", m.notes.c_str());
  std::printf("tensors    %zu, in %zu weight segments (each xxh3-checked)\n", p.tensors().size(), p.segments().size());
  if (const kiln::Tokenizer* t = p.tokenizer()) {
    const auto& d = t->data();
    const std::string chat =
        t->has_chat_template() ? "Jinja template, " + std::to_string(d.chat_template.size()) + " bytes" : "none";
    std::printf("tokenizer  %s, %d tokens, %zu merges, %zu added, bos %d, eos %d, chat %s\n",
                kiln::tokenizer_kind_name(d.kind), t->vocab_size(), d.merges.size(), d.added.size(), d.bos_id, d.eos_id,
                chat.c_str());
  } else {
    std::printf("tokenizer  none (ids only)\n");
  }
  if (p.adapters().empty()) std::printf("adapters   none\n");
  for (const auto& a : p.adapters())
    std::printf("adapter    %s, weight %g, xxh3 %016" PRIx64 " (LoRA, merged at compile time)\n", a.name.c_str(),
                a.weight, a.xxh3);
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

// The compile driver: the frontend of the folder's model family builds the graph
// (compiler/frontends/frontend.h), then one tail for every family: fusion, memory planning, the
// plan file and the summary.
#include "compiler/compile.h"

#include "codegen/plan_writer.h"
#include "compiler/error.h"
#include "compiler/frontends/common.h"
#include "compiler/frontends/frontend.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/memory_plan.h"
#include "compiler/passes/quantize.h"
#include "compiler/passes/weights.h"
#include "runtime/plan_format.h"

namespace kiln {

DType parse_plan_dtype(const std::string& s, DType def) {
  if (s.empty()) return def;
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f16" || s == "float16") return DType::F16;
  throw CompileError("--dtype '" + s + "' is not one of f32, bf16, f16");
}

PlanTargets parse_targets(const std::string& target) {
  PlanTargets targets;
  if (target == "cpu") targets.cuda_sm_archs.clear();
  else if (target == "cuda") targets.cpu = false;
  else if (target != "all" && !target.empty())
    throw CompileError("--target '" + target + "' is not one of cpu, cuda, all");
  return targets;
}

CompileSummary compile_model(const CompileOptions& o) {
  if (o.output.empty()) throw CompileError("no output path given (-o PLAN)");
  const QuantizeOptions quant{parse_quantize(o.quantize), o.quantize_head};
  if (quant.head && quant.scheme.empty()) throw CompileError("--quantize-head needs --quantize");
  // Quantized weights have CPU kernels only so far: such a plan is for the CPU unless a CUDA target
  // is asked for, which is refused.
  if (!quant.scheme.empty() && !o.target.empty() && o.target != "cpu")
    throw CompileError("--quantize " + quant.scheme + " weights run on the CPU only so far; use --target cpu (not " +
                       o.target + ")");
  const PlanTargets targets = parse_targets(quant.scheme.empty() ? o.target : "cpu");
  FrontendBuild b = frontend_for(o.model_dir).build(o);
  Graph& g = b.graph;
  if (!quant.scheme.empty() && g.kind != PlanKind::kLlm)
    throw CompileError("--quantize is for LLM checkpoints; " + o.model_dir + " is a text-to-image pipeline");
  drop_dead_nodes(g);
  if (!targets.cuda_sm_archs.empty()) fuse_for_cuda(g);
  auto weight_bytes = [&g] {
    uint64_t n = 0;
    for (const Value& v : g.values) n += v.region == Region::kWeights ? v.bytes() : 0;
    return n;
  };
  const uint64_t all_before = weight_bytes();
  const QuantizeReport qr = quantize_weights(g, quant);
  if (!quant.scheme.empty()) {
    if (qr.quantized == 0)
      throw CompileError("--quantize " + quant.scheme + ": no weight of this model can be quantized (" + qr.kept + ")");
    const std::string note =
        quant.scheme + " weights (per-row scales): " + std::to_string(qr.quantized) + " matmul weights" +
        (qr.tied_head_copy ? " (the tied LM head as an i8 copy; the embedding keeps its dtype)" : "") + ", " +
        std::to_string(qr.bytes_before) + " -> " + std::to_string(qr.bytes_after) + " bytes (all weights " +
        std::to_string(all_before) + " -> " + std::to_string(weight_bytes()) + ")" +
        (qr.kept.empty() ? "" : ", left in " + std::string(dtype_name(g.info.plan_dtype)) + ": " + qr.kept);
    add_note(&g.info.notes, note);
    add_note(&b.summary.notes, note);
  }
  plan_memory(g);
  // The runtime's limit (runtime/plan_format.h); each term is far below 2^64, so the sum does not wrap.
  if (g.kv_bytes > kMaxPlanMemory || g.arena_bytes > kMaxPlanMemory || g.request_bytes > kMaxPlanMemory ||
      g.state_bytes > kMaxPlanMemory || g.kv_bytes + g.arena_bytes + g.request_bytes + g.state_bytes > kMaxPlanMemory)
    throw CompileError("the plan needs " + std::to_string(g.kv_bytes + g.request_bytes) + " bytes of KV cache and " +
                       std::to_string(g.arena_bytes) + " bytes of arena, over the " +
                       std::to_string(kMaxPlanMemory >> 40) + " TiB limit; lower --max-seq, --batch or --chunk");
  for (const GraphProgram& p : g.programs)
    if (uint64_t(p.nodes.size()) * p.repeat > kMaxLaunchesPerRun)
      throw CompileError("program '" + p.name + "' would run " + std::to_string(p.nodes.size()) + " launches " +
                         std::to_string(p.repeat) + " times, over the runtime's bound of " +
                         std::to_string(kMaxLaunchesPerRun) + " launches per replay; lower --steps");
  for (const LoraRecord& r : b.lora.records()) g.adapters.push_back(AdapterInfo{r.name, r.xxh3, r.weight});
  ThreadPool pool;
  write_plan(
      g, targets,
      [&](const Value& v, std::vector<uint8_t>& out) { materialize_weight(v, b.checkpoint, b.lora, pool, out); },
      o.output, o.progress);

  CompileSummary s = std::move(b.summary);
  if (g.tokenizer)
    s.tokenizer = std::string(tokenizer_kind_name(g.tokenizer->kind)) + ", " +
                  std::to_string(g.tokenizer->vocab.size()) + " tokens, " + std::to_string(g.tokenizer->merges.size()) +
                  " merges" +
                  (g.tokenizer->chat == TokenizerData::Chat::kJinja
                       ? ", chat template (" + std::to_string(g.tokenizer->chat_template.size()) + " bytes of Jinja)"
                       : ", no chat template");
  s.weights_bytes = g.weight_bytes;
  s.arena_bytes = g.arena_bytes;
  s.kv_bytes = g.kv_bytes + g.request_bytes;
  s.state_bytes = g.state_bytes;
  s.adapters = b.lora.records();
  for (const GraphProgram& p : g.programs) s.programs.emplace_back(p.name, p.nodes.size());
  return s;
}

}  // namespace kiln

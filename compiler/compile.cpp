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

bool cpu_only_plan(const CompileOptions& o, bool prequantized) {
  return o.target == "cpu" ||
         (o.target.empty() && (o.quantize == "int8" || o.quantize == "int4" || (o.quantize.empty() && prequantized)));
}

CompileSummary compile_model(const CompileOptions& o) {
  if (o.output.empty()) throw CompileError("no output path given (-o PLAN)");
  QuantizeOptions quant{parse_quantize(o.quantize), o.quantize_head};
  quant.group_size = parse_group_size(quant.scheme, o.group_size);
  const bool quantizing = quant.scheme == "int8" || quant.scheme == "int4";
  if (quant.head && !quantizing) throw CompileError("--quantize-head needs --quantize int8 or int4");
  // Quantized weights have CPU kernels only so far: such a plan is for the CPU unless a CUDA target
  // is asked for, which is refused.
  if (quantizing && !o.target.empty() && o.target != "cpu")
    throw CompileError("--quantize " + quant.scheme + " weights run on the CPU only so far; use --target cpu (not " +
                       o.target + ")");
  parse_targets(o.target);  // a bad --target is refused before the checkpoint is read
  FrontendBuild b = frontend_for(o.model_dir).build(o);
  Graph& g = b.graph;
  if (!quant.scheme.empty() && quant.scheme != "none" && g.kind != PlanKind::kLlm)
    throw CompileError("--quantize is for LLM checkpoints; " + o.model_dir + " is a text-to-image pipeline");
  // A pre-quantized checkpoint (compressed-tensors int8 or int4) keeps its q and scales unless
  // --quantize none (or another scheme) says otherwise.
  int stored = 0;
  for (const auto& kv : b.checkpoint.all())
    if (kv.second->row_scale) {
      ++stored;
      quant.stored_group = kv.second->group;  // (one scheme a checkpoint: ConfigReader::prequantized)
    }
  const std::string stored_kind = quant.stored_group > 0 ? "int4" : "int8";
  if (stored > 0)
    quant.stored = [&b](const std::string& part) -> const StTensor* {
      if (b.lora.touches(part) || b.lora.replacement(part)) return nullptr;
      const StTensor* t = b.checkpoint.find(part);
      return t && t->row_scale ? t : nullptr;
    };
  const bool as_shipped = stored > 0 && quant.scheme.empty();
  if (as_shipped && !o.target.empty() && o.target != "cpu")
    throw CompileError(
        o.model_dir + " holds pre-quantized " + stored_kind +
        " weights (compressed-tensors), which run on the CPU only "
        "so far; use --target cpu, or --quantize none to dequantize them to the plan dtype (not --target " +
        o.target + ")");
  const PlanTargets targets = parse_targets(cpu_only_plan(o, stored > 0) ? "cpu" : o.target);
  drop_dead_nodes(g);
  if (!targets.cuda_sm_archs.empty()) fuse_for_cuda(g);
  auto weight_bytes = [&g] {
    uint64_t n = 0;
    for (const Value& v : g.values) n += v.region == Region::kWeights ? v.bytes() : 0;
    return n;
  };
  const uint64_t all_before = weight_bytes();
  const QuantizeReport qr = quantize_weights(g, quant);
  if (quantizing || as_shipped) {
    if (qr.quantized == 0)
      throw CompileError(
          quantizing
              ? "--quantize " + quant.scheme + ": no weight of this model can be quantized (" + qr.kept + ")"
              : o.model_dir + ": none of its pre-quantized " + stored_kind + " weights can stay " + stored_kind + " (" +
                    qr.kept + "); --quantize none dequantizes them, --quantize " + stored_kind + " re-quantizes them");
    const std::string shipped = qr.as_shipped == 0 ? ""
                                                   : " (" + std::to_string(qr.as_shipped) +
                                                         " as the checkpoint ships them, compressed-tensors)";
    // int4: "a scale per 128 values", or with several sizes "a scale per 128 (40 weights) or 96 (20) values"
    std::string groups;
    for (auto it = qr.groups.rbegin(); it != qr.groups.rend(); ++it)
      groups += (groups.empty() ? "" : " or ") + std::to_string(it->first) +
                (qr.groups.size() > 1 ? " (" + std::to_string(it->second) +
                                            (it != qr.groups.rbegin() ? ")"
                                             : it->second == 1        ? " weight)"
                                                                      : " weights)")
                                      : "");
    const bool int4 = !qr.groups.empty();
    const std::string note =
        (int4 ? "int4 weights (symmetric, a scale per " + groups + " values): "
              : std::string("int8 weights (per-row scales): ")) +
        std::to_string(qr.quantized) + " matmul weights" + shipped +
        (qr.tied_head_copy ? (int4 ? " (the tied LM head as an i4 copy; the embedding keeps its dtype)"
                                   : " (the tied LM head as an i8 copy; the embedding keeps its dtype)")
                           : "") +
        ", " + std::to_string(qr.bytes_before) + " -> " + std::to_string(qr.bytes_after) + " bytes (all weights " +
        std::to_string(all_before) + " -> " + std::to_string(weight_bytes()) + ")" +
        (qr.kept.empty() ? "" : ", left in " + std::string(dtype_name(g.info.plan_dtype)) + ": " + qr.kept);
    add_note(&g.info.notes, note);
    add_note(&b.summary.notes, note);
    if (qr.stored_parts < stored) {
      const std::string deq =
          std::to_string(stored - qr.stored_parts) + " of the checkpoint's " + std::to_string(stored) +
          " pre-quantized " + stored_kind +
          " weights not kept as shipped (changed by an adapter, read by ops without their kernels such as "
          "MoE experts, or in another scheme than --quantize asks for): " +
          (quantizing ? "re-quantized by kiln or dequantized to " : "dequantized to ") + dtype_name(g.info.plan_dtype);
      add_note(&g.info.notes, deq);
      add_note(&b.summary.notes, deq);
    }
  } else if (stored > 0) {
    const std::string note = std::to_string(stored) + " pre-quantized " + stored_kind +
                             " checkpoint weights (compressed-tensors) "
                             "dequantized to " +
                             std::string(dtype_name(g.info.plan_dtype)) + " (--quantize none)";
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

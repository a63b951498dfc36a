// The compile driver: the frontend of the folder's model family builds the graph
// (compiler/frontends/frontend.h), then one tail for every family: fusion, memory planning, the
// plan file and the summary.
#include "compiler/compile.h"

#include <set>

#include "codegen/plan_writer.h"
#include "compiler/error.h"
#include "compiler/frontends/common.h"
#include "compiler/frontends/frontend.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/memory_plan.h"
#include "compiler/passes/quantize.h"
#include "compiler/passes/weights.h"
#include "runtime/mapped_file.h"
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

bool quantizes_weights(const CompileOptions& o, bool prequantized) {
  return o.quantize == "int8" || o.quantize == "int4" || o.quantize == "fp8" || (o.quantize.empty() && prequantized);
}

bool cpu_only_plan(const CompileOptions& o, bool prequantized) {
  return o.target == "cpu" || (o.target.empty() && quantizes_weights(o, prequantized));
}

bool keeps_fp8(const CompileOptions& o, bool dtype_upcasts) {
  return o.quantize == "fp8" || (o.quantize.empty() && (o.dtype.empty() || !dtype_upcasts));
}

CompileSummary compile_model(const CompileOptions& o) {
  if (o.output.empty()) throw CompileError("no output path given (-o PLAN)");
  {  // (refused before any work)
    std::string target;
    if (Status st = output_file_path(o.output, &target); !st.is_ok()) throw CompileError(st.message());
  }
  QuantizeOptions quant{parse_quantize(o.quantize), o.quantize_head};
  quant.group_size = parse_group_size(quant.scheme, o.group_size);
  if (o.asymmetric && quant.scheme != "int4")
    throw CompileError("--asymmetric is for --quantize int4 (a zero point per group), not " +
                       (quant.scheme.empty() ? std::string("without --quantize") : "--quantize " + quant.scheme));
  quant.asymmetric = o.asymmetric;
  const bool quantizing = quant.scheme == "int8" || quant.scheme == "int4" || quant.scheme == "fp8";
  if (quant.head && !quantizing) throw CompileError("--quantize-head needs --quantize int8, int4 or fp8");
  // Quantized weights: a plan for the CPU unless --target asks for CUDA too (cpu_only_plan), whose
  // quantized kernels have not been measured on a GPU yet.
  parse_targets(o.target);  // a bad --target is refused before the checkpoint is read
  FrontendBuild b = frontend_for(o.model_dir).build(o);
  Graph& g = b.graph;
  if (!quant.scheme.empty() && quant.scheme != "none" && g.kind != PlanKind::kLlm)
    throw CompileError("--quantize is for LLM checkpoints; " + o.model_dir + " is a text-to-image pipeline");
  // A pre-quantized checkpoint (compressed-tensors or GPTQ int8 or int4, FP8 with block scales) keeps its q and
  // scales unless --quantize none (or another scheme) says otherwise, or for FP8 --dtype without --quantize.
  // (counted over the checkpoint tensors the model reads: not DeepSeek's multi-token-prediction layers)
  std::set<std::string> stored_parts;
  for (const Value& v : g.values)
    for (const std::string& part : v.weight.parts)
      if (const StTensor* t = b.checkpoint.find(part); t && (t->row_scale || t->block_scale)) stored_parts.insert(part);
  const int stored = int(stored_parts.size());
  // (one scheme a checkpoint: its config; FP8 blocks narrower than a row set the groups of the weights
  // --quantize fp8 adds, per-row and per-tensor scales leave them a row)
  bool gptq = false;
  for (const auto& kv : b.checkpoint.all())
    if (const StTensor* t = kv.second; t->row_scale) {
      quant.stored_group = t->group;
      gptq = gptq || t->gptq_bits != 0;
      quant.stored_asymmetric = quant.stored_asymmetric || t->row_zero;
    } else if (t->block_scale) {
      quant.stored_fp8 = true;
      if (t->block_cols < t->shape[1]) quant.stored_fp8_cols = t->block_cols;
    }
  const bool fp8_ckpt = quant.stored_fp8;
  const std::string stored_kind = fp8_ckpt ? "fp8" : quant.stored_group > 0 ? "int4" : "int8";
  const std::string stored_source = fp8_ckpt ? "e4m3 with their scales" : gptq ? "GPTQ" : "compressed-tensors";
  // DeepSeek's FP8 with --dtype and no --quantize
  const bool upcast = fp8_ckpt && !keeps_fp8(o, b.fp8_dtype_upcasts) && quant.scheme.empty();
  if (stored > 0 && !upcast)
    quant.stored = [&b](const std::string& part) -> const StTensor* {
      if (b.lora.touches(part) || b.lora.replacement(part)) return nullptr;
      const StTensor* t = b.checkpoint.find(part);
      return t && (t->row_scale || t->block_scale) ? t : nullptr;
    };
  const bool as_shipped = stored > 0 && quant.scheme.empty() && !upcast;
  const PlanTargets targets = parse_targets(cpu_only_plan(o, stored > 0 && !upcast) ? "cpu" : o.target);
  drop_dead_nodes(g);
  auto weight_bytes = [&g] {
    uint64_t n = 0;
    for (const Value& v : g.values) n += v.region == Region::kWeights ? v.bytes() : 0;
    return n;
  };
  const uint64_t all_before = weight_bytes();
  const QuantizeReport qr = quantize_weights(g, quant);
  // (after quantizing: a quantized matmul is not fused, its GEMV decodes the weights instead)
  if (!targets.cuda_sm_archs.empty()) fuse_for_cuda(g);
  if (quantizing || as_shipped) {
    if (qr.quantized == 0)
      throw CompileError(
          quantizing ? "--quantize " + quant.scheme + ": no weight of this model can be quantized (" + qr.kept + ")"
                     : o.model_dir + ": none of its pre-quantized " + stored_kind + " weights can stay " + stored_kind +
                           " (" + qr.kept + "); --quantize none dequantizes them" +
                           (fp8_ckpt && b.fp8_dtype_upcasts ? std::string(" (so does --dtype bf16, f16 or f32)")
                            : fp8_ckpt                      ? std::string()
                                                            : ", --quantize " + stored_kind + " re-quantizes them"));
    const std::string shipped = qr.as_shipped == 0 ? ""
                                                   : " (" + std::to_string(qr.as_shipped) +
                                                         " as the checkpoint ships them, " + stored_source + ")";
    // int4: "a scale per 128 values", or with several sizes "a scale per 128 (40 weights) or 96 (20) values";
    // fp8: "a scale per 128 values (12 weights) or per row (4)" (group 0: one scale a row)
    std::string groups;
    const bool fp8 = qr.scheme == "fp8";
    for (auto it = qr.groups.rbegin(); it != qr.groups.rend(); ++it) {
      const std::string count = qr.groups.size() > 1 ? " (" + std::to_string(it->second) +
                                                           (it != qr.groups.rbegin() ? ")"
                                                            : it->second == 1        ? " weight)"
                                                                                     : " weights)")
                                                     : "";
      const std::string size = it->first == 0 ? std::string("row") : std::to_string(it->first) + (fp8 ? " values" : "");
      groups += (groups.empty() ? "" : fp8 && it->first == 0 ? " or per " : " or ") + size + count;
    }
    if (!fp8) groups += " values";
    const std::string copy = qr.scheme == "fp8" ? "f8" : qr.scheme == "int4" ? "i4" : "i8";
    const std::string note =
        (fp8                   ? "fp8 weights (e4m3, a scale per " + groups + "): "
         : qr.scheme == "int4" ? (qr.asymmetric ? "int4 weights (asymmetric, a scale and a zero point per "
                                                : "int4 weights (symmetric, a scale per ") +
                                     groups + "): "
                               : std::string("int8 weights (per-row scales): ")) +
        std::to_string(qr.quantized) + " matmul weights" + shipped +
        (qr.tied_head_copy ? " (the tied LM head as an " + copy + " copy; the embedding keeps its dtype)" : "") + ", " +
        std::to_string(qr.bytes_before) + " -> " + std::to_string(qr.bytes_after) + " bytes (all weights " +
        std::to_string(all_before) + " -> " + std::to_string(weight_bytes()) + ")" +
        (qr.kept.empty() ? "" : ", left in " + std::string(dtype_name(g.info.plan_dtype)) + ": " + qr.kept);
    add_note(&g.info.notes, note);
    add_note(&b.summary.notes, note);
    if (qr.stored_parts < stored) {
      // why each was not kept, counted: "12 re-quantized as int4 in groups of 64, …; 2 dequantized (…)"
      std::map<std::string, int> whys;
      for (const std::string& p : stored_parts)
        if (auto it = qr.not_kept.find(p); it != qr.not_kept.end()) ++whys[it->second];
      std::string listed;
      for (const auto& [why, n] : whys) listed += (listed.empty() ? "" : "; ") + std::to_string(n) + " " + why;
      const std::string deq = std::to_string(stored - qr.stored_parts) + " of the checkpoint's " +
                              std::to_string(stored) + " pre-quantized " + stored_kind +
                              " weights not kept as shipped" + (listed.empty() ? "" : ": " + listed);
      add_note(&g.info.notes, deq);
      add_note(&b.summary.notes, deq);
    }
  } else if (stored > 0 && !fp8_ckpt) {  // (an FP8 checkpoint's own note says it was upcast or dequantized)
    const std::string note =
        std::to_string(stored) + " pre-quantized " + stored_kind + " checkpoint weights (" + stored_source +
        ") dequantized to " + std::string(dtype_name(g.info.plan_dtype)) +
        (upcast ? " (--dtype without --quantize; --quantize fp8 keeps them)" : " (--quantize none)");
    add_note(&g.info.notes, note);
    add_note(&b.summary.notes, note);
  }
  // FP8 weights the model reads only through weights the compiler computes from them are upcast even
  // when FP8 stays. (None today: DeepSeek's q_b, kv_a and kv_b are read as their checkpoint rows.)
  if (fp8_ckpt && !upcast && quant.scheme != "none" && b.fp8_weights > stored) {
    const std::string note = std::to_string(b.fp8_weights - stored) +
                             " FP8 checkpoint weights read only by weights the compiler computes from them upcast to " +
                             std::string(dtype_name(g.info.plan_dtype));
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

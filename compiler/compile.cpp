#include "compiler/compile.h"

#include "codegen/plan_writer.h"
#include "compiler/error.h"
#include "compiler/frontends/llama.h"
#include "compiler/passes/memory_plan.h"
#include "compiler/passes/weights.h"

namespace kiln {

namespace {

DType parse_dtype(const std::string& s, DType def) {
  if (s.empty()) return def;
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f16" || s == "float16") return DType::F16;
  throw CompileError("--dtype '" + s + "' is not one of f32, bf16, f16");
}

}  // namespace

CompileSummary compile_model(const CompileOptions& o) {
  if (o.output.empty()) throw CompileError("no output path given (-o PLAN)");
  const LlamaConfig cfg = read_llama_config(o.model_dir + "/config.json");
  const Checkpoint ck = Checkpoint::open_dir(o.model_dir);
  check_llama_tensors(cfg, ck);
  const LoraSet lora = LoraSet::load(o.lora, ck);

  // The checkpoint's dtype is what its weights are stored in (config.json's dtype may say
  // otherwise; the embedding decides).
  const DType stored = ck.find("model.embed_tokens.weight")->dtype;
  LlamaBuildOptions b;
  b.plan_dtype = parse_dtype(o.dtype, stored);
  b.max_seq = o.max_seq > 0 ? o.max_seq : std::min<int64_t>(cfg.max_position_embeddings, 2048);
  if (o.max_seq < 0) throw CompileError("--max-seq must be positive");
  if (b.max_seq > (int64_t(1) << 24)) throw CompileError("--max-seq " + std::to_string(b.max_seq) + " is too large");
  if (o.batch <= 0 || o.batch > 4096) throw CompileError("--batch must be between 1 and 4096");
  b.batch = o.batch;
  if (o.chunk < 0) throw CompileError("--chunk must be positive");
  b.chunk = o.chunk > 0 ? o.chunk : std::min<int64_t>(64, b.max_seq);
  if (b.chunk > b.max_seq) throw CompileError("--chunk " + std::to_string(b.chunk) + " exceeds --max-seq " + std::to_string(b.max_seq));

  Graph g = build_llama_graph(cfg, b);
  g.info.source_dtype = stored;
  plan_memory(g);
  constexpr uint64_t kMaxRegion = uint64_t(1) << 44;  // the runtime's limit (runtime/plan.cpp)
  if (g.kv_bytes > kMaxRegion || g.arena_bytes > kMaxRegion)
    throw CompileError("the plan needs " + std::to_string(g.kv_bytes) + " bytes of KV cache and " +
                       std::to_string(g.arena_bytes) + " bytes of arena, over the 16 TiB limit; lower --max-seq, --batch or --chunk");
  for (const LoraRecord& r : lora.records()) g.adapters.push_back(AdapterInfo{r.name, r.xxh3, r.weight});
  ThreadPool pool;
  PlanTargets targets;
  if (o.target == "cpu") targets.cuda_sm_archs.clear();
  else if (o.target == "cuda") targets.cpu = false;
  else if (o.target != "all") throw CompileError("--target '" + o.target + "' is not one of cpu, cuda, all");
  write_plan(g, targets,
             [&](const Value& v, std::vector<uint8_t>& out) { materialize_weight(v, ck, lora, pool, out); }, o.output);

  CompileSummary s;
  s.plan_dtype = b.plan_dtype;
  s.max_seq = b.max_seq;
  s.batch = b.batch;
  s.chunk = b.chunk;
  s.weights_bytes = g.weight_bytes;
  s.arena_bytes = g.arena_bytes;
  s.kv_bytes = g.kv_bytes;
  s.state_bytes = g.state_bytes;
  s.n_launches_prefill = g.programs[0].nodes.size();
  s.n_launches_decode = g.programs[1].nodes.size();
  s.adapters = lora.records();
  return s;
}

}  // namespace kiln

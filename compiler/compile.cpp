#include "compiler/compile.h"

#include <optional>

#include "codegen/plan_writer.h"
#include "compiler/error.h"
#include "compiler/frontends/deepseek.h"
#include "compiler/frontends/llama.h"
#include "compiler/json_util.h"
#include "compiler/tokenizer_reader.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/memory_plan.h"
#include "compiler/passes/weights.h"

namespace kiln {

namespace {

}  // namespace

DType parse_plan_dtype(const std::string& s, DType def) {
  if (s.empty()) return def;
  if (s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f16" || s == "float16") return DType::F16;
  throw CompileError("--dtype '" + s + "' is not one of f32, bf16, f16");
}

namespace {

// Sequence limits from the options, defaulting from the model's max_position_embeddings.
struct Limits {
  int64_t max_seq, batch, chunk;
};

Limits limits_from(const CompileOptions& o, int64_t max_position_embeddings) {
  Limits l;
  if (o.max_seq < 0) throw CompileError("--max-seq must be positive");
  l.max_seq = o.max_seq > 0 ? o.max_seq : std::min<int64_t>(max_position_embeddings, 2048);
  if (l.max_seq > (int64_t(1) << 24)) throw CompileError("--max-seq " + std::to_string(l.max_seq) + " is too large");
  if (o.batch <= 0 || o.batch > 4096) throw CompileError("--batch must be between 1 and 4096");
  l.batch = o.batch;
  if (o.chunk < 0) throw CompileError("--chunk must be positive");
  l.chunk = o.chunk > 0 ? o.chunk : std::min<int64_t>(64, l.max_seq);
  if (l.chunk > l.max_seq)
    throw CompileError("--chunk " + std::to_string(l.chunk) + " exceeds --max-seq " + std::to_string(l.max_seq));
  return l;
}

bool is_deepseek(const std::string& config_path) {
  const nlohmann::json j = read_json_file(config_path);
  if (!j.is_object()) throw CompileError(config_path + ": not a JSON object");
  const std::string a = ConfigReader(j, config_path).architecture();
  return a == "DeepseekV2ForCausalLM" || a == "DeepseekV3ForCausalLM" || a == "deepseek_v2" || a == "deepseek_v3";
}

}  // namespace

PlanTargets parse_targets(const std::string& target) {
  PlanTargets targets;
  if (target == "cpu") targets.cuda_sm_archs.clear();
  else if (target == "cuda") targets.cpu = false;
  else if (target != "all") throw CompileError("--target '" + target + "' is not one of cpu, cuda, all");
  return targets;
}

CompileSummary compile_model(const CompileOptions& o) {
  if (o.output.empty()) throw CompileError("no output path given (-o PLAN)");
  if (path_is_file(o.model_dir + "/model_index.json")) return compile_diffusion(o);
  const CompileOptions defaults;
  if (o.height != 0 || o.width != 0 || o.steps != defaults.steps || o.sampler != defaults.sampler ||
      o.guidance != defaults.guidance || !o.controlnet.empty() || o.control_scale != defaults.control_scale)
    throw CompileError("--height, --width, --steps, --sampler, --guidance, --controlnet and --control-scale are for "
                       "diffusers pipelines (a folder with model_index.json); " + o.model_dir + " has none");
  const std::string config_path = o.model_dir + "/config.json";
  const bool deepseek = is_deepseek(config_path);
  std::optional<LlamaConfig> llama;
  std::optional<DeepseekConfig> ds;
  if (deepseek) ds = read_deepseek_config(config_path);
  else llama = read_llama_config(config_path);
  const Checkpoint ck = Checkpoint::open_dir(o.model_dir);
  size_t mtp_tensors = 0;
  if (deepseek) check_deepseek_tensors(*ds, ck, &mtp_tensors);
  else check_llama_tensors(*llama, ck);
  const LoraSet lora = LoraSet::load(o.lora, ck);

  // The checkpoint's dtype is what its weights are stored in (config.json's dtype may say
  // otherwise; the embedding decides).
  const DType stored = ck.find("model.embed_tokens.weight")->dtype;
  const DType plan_dtype = parse_plan_dtype(o.dtype, stored);
  const Limits lim = limits_from(o, deepseek ? ds->max_position_embeddings : llama->max_position_embeddings);
  Graph g;
  if (deepseek) {
    g = build_deepseek_graph(*ds, DeepseekBuildOptions{plan_dtype, lim.max_seq, lim.batch, lim.chunk});
    const int64_t H = ds->num_attention_heads;
    g.info.kv_bytes_per_token = uint64_t(ds->num_hidden_layers * (ds->kv_lora_rank + ds->qk_rope_head_dim)) * dtype_size(plan_dtype);
    g.info.mha_kv_bytes_per_token =
        uint64_t(ds->num_hidden_layers * H * (ds->qk_head_dim() + ds->v_head_dim)) * dtype_size(plan_dtype);
    if (mtp_tensors > 0)
      g.info.notes = "skipped " + std::to_string(mtp_tensors) + " tensors of " +
                     std::to_string(ds->num_nextn_predict_layers) + " multi-token-prediction layer(s)";
  } else {
    g = build_llama_graph(*llama, LlamaBuildOptions{plan_dtype, lim.max_seq, lim.batch, lim.chunk});
    const LlamaConfig& c = *llama;
    g.info.kv_bytes_per_token = uint64_t(c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim) * dtype_size(plan_dtype);
    g.info.mha_kv_bytes_per_token =
        uint64_t(c.num_hidden_layers * 2 * c.num_attention_heads * c.head_dim) * dtype_size(plan_dtype);
  }
  g.info.source_dtype = stored;
  if (!o.no_tokenizer) {
    TokenizerData td;
    if (read_hf_tokenizer(o.model_dir, &td, &g.chat_template)) {
      auto check = Tokenizer::create(td);  // the runtime's own checks, before anything is written
      if (!check.is_ok()) throw CompileError(o.model_dir + "/tokenizer.json: " + check.status().message());
      g.tokenizer = std::move(td);
    }
  }
  const PlanTargets targets = parse_targets(o.target);
  if (!targets.cuda_sm_archs.empty()) fuse_for_cuda(g);
  plan_memory(g);
  constexpr uint64_t kMaxRegion = uint64_t(1) << 44;  // the runtime's limit (runtime/plan.cpp)
  if (g.kv_bytes > kMaxRegion || g.arena_bytes > kMaxRegion)
    throw CompileError("the plan needs " + std::to_string(g.kv_bytes) + " bytes of KV cache and " +
                       std::to_string(g.arena_bytes) + " bytes of arena, over the 16 TiB limit; lower --max-seq, --batch or --chunk");
  for (const LoraRecord& r : lora.records()) g.adapters.push_back(AdapterInfo{r.name, r.xxh3, r.weight});
  ThreadPool pool;
  write_plan(g, targets,
             [&](const Value& v, std::vector<uint8_t>& out) { materialize_weight(v, ck, lora, pool, out); }, o.output,
             o.progress);

  CompileSummary s;
  s.plan_dtype = plan_dtype;
  s.max_seq = lim.max_seq;
  s.batch = lim.batch;
  s.chunk = lim.chunk;
  s.notes = g.info.notes;
  if (g.tokenizer)
    s.tokenizer = std::string(tokenizer_kind_name(g.tokenizer->kind)) +
                  ", " + std::to_string(g.tokenizer->vocab.size()) + " tokens, " +
                  std::to_string(g.tokenizer->merges.size()) + " merges" +
                  (g.tokenizer->chat != TokenizerData::Chat::kNone ? ", chat template recognized" : "");
  s.weights_bytes = g.weight_bytes;
  s.arena_bytes = g.arena_bytes;
  s.kv_bytes = g.kv_bytes;
  s.state_bytes = g.state_bytes;
  s.adapters = lora.records();
  for (const GraphProgram& p : g.programs) s.programs.emplace_back(p.name, p.nodes.size());
  return s;
}

}  // namespace kiln

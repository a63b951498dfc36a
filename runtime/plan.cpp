// Plan loading and verification. Order: header (magic, version, hash), section bounds and
// the zero gaps, the FlatBuffer's hash, the FlatBuffers Verifier, the schema version, then
// the semantic checks (every index, size, region and kernel), and last the weight segments'
// hashes. Nothing is returned to a caller until every check has passed.
#include "runtime/plan.h"

#include <sys/mman.h>

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>

#include "plan_generated.h"
#include "runtime/plan_format.h"
#include "runtime/text.h"

namespace kiln {

static_assert(int(fb::DType::F32) == int(DType::F32) && int(fb::DType::BF16) == int(DType::BF16) &&
                  int(fb::DType::F16) == int(DType::F16) && int(fb::DType::I32) == int(DType::I32) &&
                  int(fb::DType::I64) == int(DType::I64) && int(fb::DType::I8) == int(DType::I8) &&
                  int(fb::DType::I4) == int(DType::I4) && int(fb::DType::F8E4M3) == int(DType::F8E4M3),
              "schema/plan.fbs DType must match kernels/dtype.h");

uint32_t ProgramInfo::input(const std::string& n) const {
  for (size_t i = 0; i < input_names.size(); ++i)
    if (input_names[i] == n) return inputs[i];
  return kNoTensor;
}

uint32_t ProgramInfo::output(const std::string& n) const {
  for (size_t i = 0; i < output_names.size(); ++i)
    if (output_names[i] == n) return outputs[i];
  return kNoTensor;
}

int Plan::find_program(const std::string& name) const {
  for (size_t i = 0; i < programs_.size(); ++i)
    if (programs_[i].name == name) return int(i);
  return -1;
}

bool Plan::has_target(const std::string& backend) const {
  for (const auto& t : targets_)
    if (t.backend == backend) return true;
  return false;
}

const uint8_t* Plan::weights_base() const { return file_->data() + weights_offset_; }

const void* Plan::weight_data(const TensorInfo& t) const { return weights_base() + t.offset; }

Plan::WeightCopy::~WeightCopy() {
  if (data) ::munmap(data, size);
}

uint64_t Plan::weight_copy_bytes() const {
  // (after the call_once in huge_page_weights_base, or 0: callers ask after it ran)
  return weight_copy_.data ? weights_size_ : 0;
}

const uint8_t* Plan::huge_page_weights_base() const {
  std::call_once(weight_copy_once_, [this] {
    if (!file_->mapped() || weights_size_ == 0) return;
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t n = (size_t(weights_size_) + kHuge - 1) / kHuge * kHuge;
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;  // no address space for a copy: read the mapping
#ifdef MADV_HUGEPAGE
    ::madvise(p, n, MADV_HUGEPAGE);  // a request: without THP the copy is plain pages
#endif
    std::memcpy(p, weights_base(), size_t(weights_size_));
    ::mprotect(p, n, PROT_READ);
    weight_copy_.data = p;
    weight_copy_.size = n;
  });
  return weight_copy_.data ? static_cast<const uint8_t*>(weight_copy_.data) : weights_base();
}

Result<std::shared_ptr<const Plan>> Plan::load_file(const std::string& path, const Progress& progress,
                                                    const OpRegistry& ops) {
  auto f = MappedFile::open(path);
  if (!f.is_ok()) return f.status();
  return load(f.take(), progress, ops);
}

Result<std::shared_ptr<const Plan>> Plan::load_memory(const void* data, size_t size, const OpRegistry& ops) {
  if (data == nullptr && size != 0) return invalid_argument("plan memory is null");
  if (reinterpret_cast<uintptr_t>(data) % kPlanMemoryAlign != 0)
    return invalid_argument("plan memory at " + std::to_string(reinterpret_cast<uintptr_t>(data)) + " is not " +
                            std::to_string(kPlanMemoryAlign) +
                            "-byte aligned (the plan's tables need it): copy it to an aligned buffer");
  return load(MappedFile::borrow(data, size, "<memory>"), nullptr, ops);
}

// Hashing a plan of gigabytes is the bulk of a load (and of its page faults), so large plans are
// hashed on several threads, each taking the next unclaimed segment; a thread that finds a mismatch
// still lets the lower-numbered segments be hashed, so the answer does not depend on timing.
size_t first_bad_weight_segment(const uint8_t* wbase, const std::vector<SegmentInfo>& segs, uint64_t total,
                                const Plan::Progress& progress, uint64_t parallel_bytes) {
  constexpr unsigned kMaxThreads = 8;
  std::atomic<size_t> next{0}, bad{segs.size()};
  std::atomic<uint64_t> done{0};
  uint64_t reported = 0;  // the caller's last progress value (only the calling thread reports)
  auto work = [&](bool report) {
    for (size_t i = next.fetch_add(1); i < segs.size(); i = next.fetch_add(1)) {
      if (i > bad.load()) continue;  // a lower segment already failed
      const SegmentInfo& s = segs[i];
      if (XXH3_64bits(wbase + s.offset, s.size) != s.xxh3) {
        size_t cur = bad.load();
        while (i < cur && !bad.compare_exchange_weak(cur, i)) {}
      }
      const uint64_t d = done.fetch_add(s.size) + s.size;
      if (report && progress) {
        progress(d, total);
        reported = d;
      }
    }
  };
  uint64_t bytes = 0;
  for (const SegmentInfo& s : segs) bytes += s.size;
  unsigned n = bytes >= parallel_bytes ? std::min(kMaxThreads, std::max(1u, std::thread::hardware_concurrency())) : 1;
  n = unsigned(std::min<size_t>(n, segs.size()));
  std::vector<std::thread> helpers;
  auto stop_helpers = [&] {
    next.store(segs.size());
    for (std::thread& t : helpers) t.join();
  };
  try {
    if (n > 1) helpers.reserve(n - 1);
    for (unsigned t = 1; t < n; ++t) helpers.emplace_back(work, false);
  } catch (const std::system_error&) {
    // no more threads: the ones there, and this one, finish the work
  } catch (...) {  // out of memory: reported as such, once the helpers there have stopped
    stop_helpers();
    throw;
  }
  try {
    work(true);
  } catch (...) {  // progress threw: let the helpers run out of segments, join them, pass it on
    stop_helpers();
    throw;
  }
  for (std::thread& t : helpers) t.join();
  const size_t first_bad = bad.load();
  if (progress && first_bad == segs.size() && reported < total) progress(total, total);
  return first_bad;
}

Status Plan::verify_structure(const std::string& path, const OpRegistry& ops) {
  auto f = MappedFile::open(path);
  if (!f.is_ok()) return f.status();
  std::shared_ptr<Plan> p(new Plan());
  p->file_ = f.take();
  return p->parse_and_verify(nullptr, ops, /*hash_weights=*/false);  // the message names no path
}

Result<std::shared_ptr<const Plan>> Plan::load(std::unique_ptr<MappedFile> file, const Progress& progress,
                                               const OpRegistry& ops, bool hash_weights) {
  std::shared_ptr<Plan> p(new Plan());
  p->file_ = std::move(file);
  Status st = p->parse_and_verify(progress, ops, hash_weights);
  if (!st.is_ok()) {
    return Status(st.code(), p->file_->path() + ": " + st.message());
  }
  return std::shared_ptr<const Plan>(std::move(p));
}

// ---------------------------------------------------------------------------------------
namespace {

bool all_zero(const uint8_t* p, uint64_t n) {
  static const uint8_t zeros[4096] = {};  // compared a block at a time (segment padding is up to 4 KiB each)
  for (uint64_t at = 0; at < n; at += sizeof(zeros))
    if (std::memcmp(p + at, zeros, size_t(std::min<uint64_t>(sizeof(zeros), n - at))) != 0) return false;
  return true;
}

// a + b without wrapping; false on overflow.
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a > UINT64_MAX - b) return false;
  *out = a + b;
  return true;
}

// The FlatBuffers Verifier checks a vector's length prefix alignment, not its elements': a
// crafted buffer can hold 8-byte scalars at 4-byte boundaries. Refuse those before reading.
template <typename V>
bool elements_aligned(const V* v) {
  return !v || v->size() == 0 || reinterpret_cast<uintptr_t>(v->data()) % alignof(typename V::return_type) == 0;
}

template <typename T, typename V>
std::vector<T> vec(const V* v) {
  std::vector<T> out;
  if (v) out.assign(v->begin(), v->end());
  return out;
}

constexpr int64_t kMaxDim = int64_t(1) << 40;
constexpr int kMaxRank = 8;
constexpr uint32_t kMaxRepeat = 100000;  // loop iterations of one program
constexpr uint64_t kRegionSlack = 64 << 10;  // bytes a region may hold past its last tensor (alignment)
// CPU scratch per worker thread (1 GiB): far above any real model's (scores over max_seq keys,
// a vocabulary of probabilities), far below what would exhaust a host.
constexpr uint64_t kMaxScratchFloats = uint64_t(1) << 28;

// Well-formed UTF-8: every code point decodes (text::next_cp refuses overlong forms, surrogates
// and code points past U+10FFFF).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0, len = 0; i < s.size(); i += len)
    if (text::next_cp(s, i, &len) == text::kInvalid) return false;
  return true;
}

// Reads the plan's strings, remembering whether one was not well-formed UTF-8.
struct Strings {
  bool bad = false;
  std::string operator()(const flatbuffers::String* s) {
    std::string v = s ? s->str() : std::string();
    bad = bad || !valid_utf8(v);
    return v;
  }
};

// A moe_experts launch reads the ids and weights that one moe_route launch of the program wrote,
// routed over as many experts as its tables hold (else ids past them would be dropped, or ids
// nothing routed would select experts).
Status check_routed(const ProgramInfo& p, size_t k, const std::vector<TensorInfo>& t,
                    const std::vector<const OpDef*>& ops, const std::vector<int64_t>& writer) {
  const LaunchInfo& l = p.launches[k];
  const uint32_t ids = l.inputs[1], weights = l.inputs[2];
  const int64_t w = writer[ids];
  const LaunchInfo* r = w >= 0 ? &p.launches[size_t(w)] : nullptr;
  if (!r || std::string(ops[r->kernel]->name) != "moe_route" || r->outputs.size() < 2 || r->outputs[0] != ids ||
      r->outputs[1] != weights || writer[weights] != w)
    return invalid_argument("launch " + std::to_string(k) + " (moe_experts) does not read the ids and weights of a " +
                            "moe_route launch");
  const TensorInfo &gate = t[r->inputs[1]], &h = t[l.inputs[0]], &down = t[l.inputs[4]];
  if (h.shape.size() != 2 || down.shape.size() != 2 || h.shape[1] <= 0 || gate.shape.empty() ||
      down.shape[0] / h.shape[1] != gate.shape[0])
    return invalid_argument("launch " + std::to_string(k) + " (moe_experts) holds other experts than its router '" +
                            gate.name + "' routes over");
  return Status::ok();
}

// The invariants of one program that no single launch shows (schema/README.md): each arena tensor a launch reads was
// written by an earlier launch of the program (the arena holds nothing between replays) and not overwritten in part
// since; a moe_experts launch reads a moe_route's ids over its own experts; each output is written by one
// of its launches; next_token is what a sample launch wrote; one replay is bounded work.
Status check_program(const ProgramInfo& p, const std::vector<TensorInfo>& t, const std::vector<const OpDef*>& ops,
                     const ModelInfo& model) {
  // By tensor, or by exactly its bytes (a view of a written tensor: same offset and size), not
  // by any covering bytes: the memory planner reuses the arena, so bytes another tensor left
  // there are stale, not this tensor's value.
  // A view keeps the dtype it was written with (read as another, its bytes mean other values).
  std::vector<bool> written(t.size(), false);
  std::vector<int64_t> writer(t.size(), -1);  // the last launch that wrote it
  // A write over part of an arena tensor's bytes ends that tensor's value (the memory planner
  // reuses bytes only after their last read): reading it afterwards reads what the other wrote.
  std::map<std::tuple<Region, uint64_t, uint64_t, DType>, int> written_bytes;  // (region, offset, size, dtype)
  auto key = [&](uint32_t i) { return std::make_tuple(t[i].region, t[i].offset, t[i].size_bytes, t[i].dtype); };
  auto was_written = [&](uint32_t i) { return written[i] || written_bytes.count(key(i)) > 0; };
  // The arena tensors written and not overwritten since, by offset: tensors at one offset alias
  // each other (the same size and dtype), all others are disjoint, so a write finds the ones it
  // overlaps in O(log n) plus what it ends. (Ends cannot overflow: every tensor lies in its
  // region, checked before.)
  std::map<uint64_t, std::vector<uint32_t>> live;
  std::vector<uint32_t> overwritten_by(t.size(), kNoTensor);  // (for the message)
  auto write = [&](uint32_t o) {
    const uint64_t a = t[o].offset, b = a + t[o].size_bytes;
    if (t[o].region == Region::kArena) {
      auto it = live.lower_bound(a);
      if (it != live.begin()) {
        const auto before = std::prev(it);
        const TensorInfo& x = t[before->second.front()];
        if (x.offset + x.size_bytes > a) it = before;
      }
      while (it != live.end() && it->first < b) {
        const TensorInfo& x = t[it->second.front()];
        if (x.offset == a && x.size_bytes == t[o].size_bytes && x.dtype == t[o].dtype) {
          ++it;  // (o itself, or a view with exactly its bytes)
          continue;
        }
        for (uint32_t j : it->second) {
          written[j] = false;
          overwritten_by[j] = o;
          if (--written_bytes[key(j)] == 0) written_bytes.erase(key(j));
        }
        it = live.erase(it);
      }
    }
    if (!written[o]) {
      written[o] = true;
      ++written_bytes[key(o)];
      if (t[o].region == Region::kArena) live[a].push_back(o);
    }
  };
  uint32_t next_writer = kNoTensor;  // the kernel of the last launch that wrote next_token
  const uint32_t next = p.output("next_token");
  for (size_t k = 0; k < p.launches.size(); ++k) {
    const LaunchInfo& l = p.launches[k];
    std::vector<uint32_t> reads = l.inputs;
    for (size_t o = 0; o < l.outputs.size(); ++o)
      if (ops[l.kernel]->reads_output && ops[l.kernel]->reads_output(OpLaunch(l, t, model), int(o)))
        reads.push_back(l.outputs[o]);
    for (uint32_t i : reads)
      if (i != kNoTensor && t[i].region == Region::kArena && !was_written(i))
        return invalid_argument("launch " + std::to_string(k) + " reads arena tensor '" + t[i].name +
                                (overwritten_by[i] == kNoTensor
                                     ? "' before any launch of the program writes it"
                                     : "' after '" + t[overwritten_by[i]].name + "' overwrote part of it"));
    if (std::string(ops[l.kernel]->name) == "moe_experts") KILN_RETURN_IF_ERROR(check_routed(p, k, t, ops, writer));
    for (uint32_t o : l.outputs) {
      write(o);
      writer[o] = int64_t(k);
      if (o == next) next_writer = l.kernel;
    }
  }
  for (size_t i = 0; i < p.outputs.size(); ++i) {
    if (!was_written(p.outputs[i]))
      return invalid_argument("output '" + p.output_names[i] + "' is not written by any launch of the program");
  }
  if (next != kNoTensor && (next_writer == kNoTensor || std::string(ops[next_writer]->name) != "sample"))
    return invalid_argument("next_token is not the output of a sample launch");
  if (uint64_t(p.launches.size()) * p.repeat > kMaxLaunchesPerRun)
    return invalid_argument(std::to_string(p.launches.size()) + " launches repeated " + std::to_string(p.repeat) +
                            " times exceed the bound of " + std::to_string(kMaxLaunchesPerRun) +
                            " launches per replay");
  return Status::ok();
}

}  // namespace

namespace {

// A text-to-image plan's DiffusionInfo, every number in range and finite as the f32 the kernels use.
Status read_diffusion(const fb::DiffusionInfo* d, DiffusionInfo* out, Strings& str) {
  if (!d) return corrupt_plan("a text-to-image plan lacks its diffusion table");
  out->height = d->height();
  out->width = d->width();
  out->steps = d->steps();
  out->text_len = d->text_len();
  for (int64_t side : {out->height, out->width})
    if (side < 8 || side > (int64_t(1) << 16) || side % 8 != 0)
      return corrupt_plan("diffusion image size is out of range");
  if (out->steps < 1 || out->steps > kMaxDiffusionSteps) return corrupt_plan("diffusion step count is out of range");
  if (out->text_len < 1 || out->text_len > 4096) return corrupt_plan("diffusion text length is out of range");
  out->sampler = str(d->sampler());
  out->timestep_spacing = str(d->timestep_spacing());
  out->prediction_type = str(d->prediction_type());
  out->guidance = d->guidance();
  out->init_noise_sigma = d->init_noise_sigma();
  out->control_scale = d->control_scale();
  out->vae_scaling_factor = d->vae_scaling_factor();
  for (double v : {out->guidance, out->init_noise_sigma, out->control_scale, out->vae_scaling_factor})
    if (!std::isfinite(float(v))) return corrupt_plan("a diffusion setting is not finite");
  if (d->components())
    for (const auto* c : *d->components()) out->components.push_back(str(c));
  return Status::ok();
}

}  // namespace

Status Plan::parse_and_verify(const Progress& progress, const OpRegistry& ops, bool hash_weights) {
  Strings str;
  const uint8_t* data = file_->data();
  const uint64_t size = file_->size();

  // --- header
  if (size < sizeof(PlanHeader))
    return corrupt_plan(std::string(file_->path() == "<memory>" ? "the plan in memory" : "file") + " is " +
                        std::to_string(size) + " bytes, shorter than the 128-byte plan header");
  PlanHeader h;
  std::memcpy(&h, data, sizeof(h));
  if (std::memcmp(h.magic, kPlanMagic, sizeof(kPlanMagic)) != 0) return corrupt_plan("not a kiln plan (bad magic)");
  if (h.format_version > kPlanFormatVersion)
    return unsupported("plan format version " + std::to_string(h.format_version) +
                       " is newer than this runtime supports (" + std::to_string(kPlanFormatVersion) +
                       "); rebuild kiln or recompile the plan");
  if (h.format_version == 0) return corrupt_plan("plan format version 0 is invalid");
  if (XXH3_64bits(data, offsetof(PlanHeader, header_xxh3)) != h.header_xxh3)
    return corrupt_plan("header checksum mismatch");
  if (h.header_size != sizeof(PlanHeader)) return corrupt_plan("unexpected header size");
  if (!all_zero(h.reserved, sizeof(h.reserved))) return corrupt_plan("reserved header bytes are not zero");
  format_version_ = h.format_version;

  // --- sections
  if (h.file_size != size)
    return corrupt_plan("file is " + std::to_string(size) + " bytes but the header says " +
                        std::to_string(h.file_size) + " (truncated or extended)");
  uint64_t fb_end = 0, w_end = 0;
  if (h.fb_offset < sizeof(PlanHeader) || !add_ok(h.fb_offset, h.fb_size, &fb_end) || fb_end > size ||
      h.fb_offset % 8 != 0)
    return corrupt_plan("FlatBuffer section lies outside the file");
  if (h.weights_offset < fb_end || h.weights_offset % kSegmentAlignment != 0 ||
      !add_ok(h.weights_offset, h.weights_size, &w_end) || w_end != size)
    return corrupt_plan("weights section lies outside the file");
  if (!all_zero(data + sizeof(PlanHeader), h.fb_offset - sizeof(PlanHeader)) ||
      !all_zero(data + fb_end, h.weights_offset - fb_end))
    return corrupt_plan("padding between sections is not zero");
  if (h.fb_size < 8 || h.fb_size > (uint64_t(1) << 31)) return corrupt_plan("FlatBuffer size is out of range");
  const uint8_t* fbp = data + h.fb_offset;
  if (XXH3_64bits(fbp, h.fb_size) != h.fb_xxh3) return corrupt_plan("FlatBuffer checksum mismatch");
  fb_size_ = h.fb_size;
  fb_xxh3_ = h.fb_xxh3;
  weights_offset_ = h.weights_offset;
  weights_size_ = h.weights_size;

  // --- FlatBuffer structure
  if (!flatbuffers::BufferHasIdentifier(fbp, fb::PlanIdentifier()))
    return corrupt_plan("FlatBuffer identifier is not KILN");
  flatbuffers::Verifier verifier(fbp, size_t(h.fb_size), /*max_depth=*/64, /*max_tables=*/10000000);
  if (!fb::VerifyPlanBuffer(verifier)) return corrupt_plan("FlatBuffer failed structural verification");
  const fb::Plan* root = fb::GetPlan(fbp);
  schema_version_ = root->schema_version();
  if (schema_version_ > kSchemaVersion)
    return unsupported("plan schema version " + std::to_string(schema_version_) +
                       " is newer than this runtime supports (" + std::to_string(kSchemaVersion) + ")");
  if (schema_version_ == 0) return corrupt_plan("plan schema version 0 is invalid");
  if (schema_version_ < kSchemaVersion)
    return unsupported("plan schema version " + std::to_string(schema_version_) + " is older than this runtime's (" +
                       std::to_string(kSchemaVersion) + "): compile the checkpoint again with this kiln");
  generator_ = str(root->generator());

  // --- model, memory, targets
  const fb::ModelInfo* m = root->model();
  const fb::MemoryPlan* mem = root->memory();
  if (!m || !mem) return corrupt_plan("plan lacks its model or memory table");
  model_.architecture = str(m->architecture());
  model_.vocab_size = m->vocab_size();
  model_.max_seq = m->max_seq();
  model_.batch = m->batch();
  model_.chunk = m->chunk();
  if (!dtype_valid(uint8_t(m->source_dtype())) || !dtype_valid(uint8_t(m->plan_dtype())))
    return corrupt_plan("model dtype is invalid");
  model_.source_dtype = DType(m->source_dtype());
  model_.plan_dtype = DType(m->plan_dtype());
  model_.config_json = str(m->config_json());
  model_.kv_bytes_per_token = m->kv_bytes_per_token();
  model_.mha_kv_bytes_per_token = m->mha_kv_bytes_per_token();
  model_.notes = str(m->notes());
  if (uint8_t(root->kind()) > uint8_t(fb::PlanKind::MAX)) return corrupt_plan("plan kind is invalid");
  kind_ = PlanKind(root->kind());
  if (model_.vocab_size <= 0 || model_.vocab_size > (int64_t(1) << 31))
    return corrupt_plan("model limits are out of range");
  if (kind_ == PlanKind::kLlm) {
    for (int64_t v : {model_.max_seq, model_.batch, model_.chunk})
      if (v <= 0 || v > (int64_t(1) << 31)) return corrupt_plan("model limits are out of range");
    if (root->diffusion()) return corrupt_plan("an LLM plan has a diffusion table");
  } else {
    if (model_.max_seq != 0 || model_.batch != 0 || model_.chunk != 0)
      return corrupt_plan("a text-to-image plan has LLM limits (max_seq, batch, chunk must be 0)");
    KILN_RETURN_IF_ERROR(read_diffusion(root->diffusion(), &diffusion_, str));
  }
  memory_ = {mem->weights_bytes(), mem->arena_bytes(),     mem->kv_bytes(),
             mem->state_bytes(),   mem->workspace_bytes(), mem->request_bytes()};
  {
    uint64_t total = 0;
    for (uint64_t r :
         {memory_.arena_bytes, memory_.kv_bytes, memory_.state_bytes, memory_.workspace_bytes, memory_.request_bytes})
      if (r > kMaxPlanMemory || !add_ok(total, r, &total) || total > kMaxPlanMemory)
        return corrupt_plan("the plan asks for more than " + std::to_string(kMaxPlanMemory >> 40) +
                            " TiB of memory besides its weights");
  }
  if (root->targets()) {
    for (const fb::Target* t : *root->targets()) {
      if (!t) return corrupt_plan("null target");
      TargetInfo ti;
      if (t->backend() == fb::Backend::Cpu) ti.backend = "cpu";
      else if (t->backend() == fb::Backend::Cuda) ti.backend = "cuda";
      else return corrupt_plan("unknown target backend " + std::to_string(int(t->backend())));
      ti.sm_archs = vec<uint32_t>(t->sm_archs());
      targets_.push_back(std::move(ti));
    }
  }

  if (root->adapters()) {
    for (const fb::Adapter* a : *root->adapters()) {
      if (!a) return corrupt_plan("null adapter record");
      adapters_.push_back(AdapterInfo{str(a->name()), a->xxh3(), a->weight()});
    }
  }

  // --- segments: sorted, aligned, inside the section, zero bytes between and after
  const uint8_t* wbase = data + h.weights_offset;
  uint64_t cursor = 0;
  if (root->segments()) {
    for (const fb::Segment* s : *root->segments()) {
      if (!s) return corrupt_plan("null segment");
      SegmentInfo si{s->offset(), s->size(), s->xxh3()};
      uint64_t end = 0;
      if (si.offset < cursor || si.offset % kSegmentAlignment != 0 || !add_ok(si.offset, si.size, &end) ||
          end > h.weights_size)
        return corrupt_plan("weight segment " + std::to_string(segments_.size()) + " is out of bounds or out of order");
      if (!all_zero(wbase + cursor, si.offset - cursor))
        return corrupt_plan("padding between weight segments is not zero");
      cursor = end;
      segments_.push_back(si);
    }
  }
  if (!all_zero(wbase + cursor, h.weights_size - cursor))
    return corrupt_plan("bytes after the last weight segment are not zero");
  memory_.weights_bytes = std::min<uint64_t>(memory_.weights_bytes, h.weights_size);

  // --- tensors
  if (!root->tensors()) return corrupt_plan("plan has no tensor table");
  for (const fb::Tensor* t : *root->tensors()) {
    if (!t) return corrupt_plan("null tensor");
    TensorInfo ti;
    ti.name = str(t->name());
    const std::string what = "tensor " + std::to_string(tensors_.size()) + " '" + ti.name + "'";
    if (!dtype_valid(uint8_t(t->dtype()))) return corrupt_plan(what + " has an invalid dtype");
    ti.dtype = DType(t->dtype());
    if (!elements_aligned(t->shape())) return corrupt_plan(what + " has a misaligned shape vector");
    ti.shape = vec<int64_t>(t->shape());
    if (ti.shape.size() > size_t(kMaxRank)) return corrupt_plan(what + " has too many dimensions");
    uint64_t bytes = dtype_size(ti.dtype);
    for (int64_t d : ti.shape) {
      if (d <= 0 || d > kMaxDim) return corrupt_plan(what + " has a dimension out of range");
      if (bytes > UINT64_MAX / uint64_t(d)) return corrupt_plan(what + " is too large");
      bytes *= uint64_t(d);
    }
    if (t->size_bytes() != bytes) return corrupt_plan(what + " size does not match its shape and dtype");
    ti.size_bytes = bytes;
    ti.offset = t->offset();
    if (uint8_t(t->region()) > uint8_t(fb::Region::MAX)) return corrupt_plan(what + " has an invalid region");
    ti.region = Region(t->region());
    uint64_t end = 0;
    if (!add_ok(ti.offset, bytes, &end)) return corrupt_plan(what + " offset overflows");
    switch (ti.region) {
      case Region::kWeights: {
        ti.segment = t->segment();
        if (ti.segment >= segments_.size()) return corrupt_plan(what + " names a segment out of range");
        const SegmentInfo& s = segments_[ti.segment];
        if (end > s.size) return corrupt_plan(what + " extends past its segment");
        ti.offset += s.offset;
        break;
      }
      case Region::kArena:
        if (end > memory_.arena_bytes) return corrupt_plan(what + " extends past the arena");
        break;
      case Region::kKvCache:
        if (end > memory_.kv_bytes) return corrupt_plan(what + " extends past the KV cache");
        break;
      case Region::kState:
        if (end > memory_.state_bytes) return corrupt_plan(what + " extends past the state buffer");
        break;
      case Region::kRequest:
        if (end > memory_.request_bytes) return corrupt_plan(what + " extends past the request region");
        break;
    }
    if (ti.offset % dtype_size(ti.dtype) != 0) return corrupt_plan(what + " is misaligned");
    tensors_.push_back(std::move(ti));
  }

  // --- state tensors must not overlap: the runtime bounds each one's values separately; nor may
  // KV caches (each layer's cache is its own: shared, one layer's writes would corrupt another's)
  for (const auto& [region, name] : {std::pair{Region::kState, "state tensors"}, {Region::kKvCache, "KV caches"}}) {
    std::vector<std::pair<uint64_t, uint64_t>> st;
    for (const TensorInfo& t : tensors_)
      if (t.region == region) st.emplace_back(t.offset, t.offset + t.size_bytes);
    std::sort(st.begin(), st.end());
    for (size_t i = 1; i < st.size(); ++i)
      if (st[i].first < st[i - 1].second) return corrupt_plan(std::string(name) + " overlap");
  }
  // --- each region is what its tensors need (allocated, and zeroed, in full at creation): a plan
  // that asks for gigabytes its tensors never touch is refused
  {
    uint64_t need[5] = {};  // by Region (weights unused)
    for (const TensorInfo& t : tensors_)
      if (t.region != Region::kWeights)
        need[size_t(t.region)] = std::max(need[size_t(t.region)], t.offset + t.size_bytes);
    const std::pair<Region, uint64_t> regions[] = {{Region::kArena, memory_.arena_bytes},
                                                   {Region::kKvCache, memory_.kv_bytes},
                                                   {Region::kState, memory_.state_bytes},
                                                   {Region::kRequest, memory_.request_bytes}};
    for (const auto& [region, bytes] : regions)
      if (bytes > need[size_t(region)] + kRegionSlack)
        return corrupt_plan("the plan's " + std::string(region_name(region)) + " is " + std::to_string(bytes) +
                            " bytes, more than its tensors need (" + std::to_string(need[size_t(region)]) + ")");
  }

  // --- kernels
  if (root->kernels()) {
    for (const fb::Kernel* k : *root->kernels()) {
      if (!k) return corrupt_plan("null kernel");
      const OpDef* op = ops.find(str(k->name()), k->version());
      if (!op)
        return unsupported("plan uses kernel '" + str(k->name()) + "' version " + std::to_string(k->version()) +
                           ", which this runtime does not provide");
      kernels_.push_back(op);
    }
  }

  // --- programs
  if (!root->programs() || root->programs()->size() == 0) return corrupt_plan("plan has no programs");
  std::set<std::string> names;
  for (const fb::Program* p : *root->programs()) {
    if (!p) return corrupt_plan("null program");
    ProgramInfo pi;
    pi.name = str(p->name());
    if (pi.name.empty() || !names.insert(pi.name).second)
      return corrupt_plan("program names must be unique and non-empty");
    const std::string what = "program '" + pi.name + "'";
    pi.inputs = vec<uint32_t>(p->inputs());
    pi.outputs = vec<uint32_t>(p->outputs());
    if (p->input_names())
      for (const auto* s : *p->input_names()) pi.input_names.push_back(str(s));
    if (p->output_names())
      for (const auto* s : *p->output_names()) pi.output_names.push_back(str(s));
    if (pi.input_names.size() != pi.inputs.size() || pi.output_names.size() != pi.outputs.size())
      return corrupt_plan(what + " has mismatched input or output names");
    for (uint32_t i : pi.inputs)
      if (i >= tensors_.size() || tensors_[i].region != Region::kState ||
          (tensors_[i].dtype != DType::I32 && tensors_[i].dtype != DType::F32))
        return corrupt_plan(what + " has an input that is not an i32 or f32 state tensor");
    {  // state tensors do not overlap, so distinct ones are disjoint
      std::map<uint32_t, size_t> seen;
      for (size_t i = 0; i < pi.inputs.size(); ++i) {
        auto [it, fresh] = seen.emplace(pi.inputs[i], i);
        if (!fresh)
          return corrupt_plan(what + ": inputs '" + pi.input_names[it->second] + "' and '" + pi.input_names[i] +
                              "' are one tensor");
      }
    }
    for (uint32_t i : pi.outputs)
      if (i >= tensors_.size() || tensors_[i].region == Region::kWeights)
        return corrupt_plan(what + " has an output index out of range");
    if (!p->launches()) return corrupt_plan(what + " has no launch list");
    for (const fb::Launch* l : *p->launches()) {
      if (!l) return corrupt_plan(what + " has a null launch");
      LaunchInfo li;
      li.kernel = l->kernel();
      const std::string lwhat = what + " launch " + std::to_string(pi.launches.size());
      if (li.kernel >= kernels_.size()) return corrupt_plan(lwhat + " names a kernel out of range");
      li.inputs = vec<uint32_t>(l->inputs());
      li.outputs = vec<uint32_t>(l->outputs());
      if (!elements_aligned(l->int_attrs()) || !elements_aligned(l->float_attrs()))
        return corrupt_plan(lwhat + " has misaligned attributes");
      li.int_attrs = vec<int64_t>(l->int_attrs());
      li.float_attrs = vec<double>(l->float_attrs());
      for (double f : li.float_attrs)  // kernels read them as f32: finite as a double is not enough
        if (!(std::fabs(f) <= double(FLT_MAX)))
          return corrupt_plan(lwhat + " has an attribute that is not a finite f32");
      const OpDef& op = *kernels_[li.kernel];
      Status st = validate_launch(op, li, tensors_, model_, &pi.scratch_floats);
      // Step-state operands must be this program's own inputs of that name: those are the
      // ones the runtime bounds before every replay (start_pos + n_valid <= max_seq).
      for (int k = 0; st.is_ok() && k < op.n_state; ++k) {
        const uint32_t t = li.inputs[size_t(op.state[k].operand)];
        if (t != kNoTensor && t != pi.input(op.state[k].input))
          st = invalid_argument(std::string("its ") + op.state[k].input + " operand is not the program's " +
                                op.state[k].input + " input");
      }
      if (!st.is_ok()) return corrupt_plan(lwhat + " (" + kernels_[li.kernel]->name + "): " + st.message());
      pi.launches.push_back(std::move(li));
    }
    if (pi.scratch_floats > kMaxScratchFloats)  // (a valid plan can be this large: a limit, not corruption)
      return Status(StatusCode::kLimitExceeded, what + " needs " + std::to_string(pi.scratch_floats) +
                                                    " floats of CPU scratch per thread, more than the bound of " +
                                                    std::to_string(kMaxScratchFloats));
    pi.repeat = p->repeat();
    pi.counter = p->counter();
    if (pi.repeat < 1 || pi.repeat > kMaxRepeat) return corrupt_plan(what + " repeats out of range");
    if (pi.counter != kNoTensor) {
      if (std::find(pi.inputs.begin(), pi.inputs.end(), pi.counter) == pi.inputs.end() ||
          tensors_[pi.counter].dtype != DType::I32 || tensors_[pi.counter].shape != std::vector<int64_t>{1})
        return corrupt_plan(what + "'s loop counter is not one of its i32 (1,) inputs");
    } else if (pi.repeat > 1) {
      return corrupt_plan(what + " repeats without a loop counter");
    }
    Status st = check_program(pi, tensors_, kernels_, model_);
    if (!st.is_ok()) return corrupt_plan(what + ": " + st.message());
    programs_.push_back(std::move(pi));
  }

  // --- tokenizer (checked by Tokenizer::create: every id in range)
  if (const fb::Tokenizer* t = root->tokenizer()) {
    TokenizerData d;
    if (t->kind() > 2 || t->split() > 5 || (t->chat() != 0 && t->chat() != 3))
      return corrupt_plan("tokenizer kind is invalid");
    d.kind = TokenizerData::Kind(t->kind());
    d.split = TokenizerData::Split(t->split());
    if (t->split_regexes())  // (Tokenizer::create bounds their number and length and compiles them)
      for (const auto* s : *t->split_regexes()) d.split_regexes.push_back(str(s));
    if (t->vocab())
      for (const auto* s : *t->vocab()) d.vocab.push_back(str(s));
    if (t->merges()) {
      if (t->merges()->size() % 2 != 0) return corrupt_plan("tokenizer merges are not pairs");
      for (flatbuffers::uoffset_t i = 0; i < t->merges()->size(); i += 2)
        d.merges.push_back({t->merges()->Get(i), t->merges()->Get(i + 1)});
    }
    d.ignore_merges = t->ignore_merges();
    d.byte_fallback = t->byte_fallback();
    d.unk_id = t->unk_id();
    d.sp_prepend = t->sp_prepend();
    d.sp_prepend_first = t->sp_prepend_first();
    d.metaspace = t->metaspace();
    d.metaspace_split = t->metaspace_split();
    d.fuse_unk = t->fuse_unk();
    d.nfc = t->nfc();
    d.decode_strip_space = t->decode_strip_space();
    if (t->added())
      for (const fb::AddedToken* a : *t->added()) {
        if (!a) return corrupt_plan("null added token");
        d.added.push_back(
            {a->id(), str(a->content()), a->special(), a->lstrip(), a->rstrip(), a->normalized(), a->single_word()});
      }
    d.bos_id = t->bos_id();
    d.eos_id = t->eos_id();
    d.pad_id = t->pad_id();
    d.add_bos = t->add_bos();
    d.stop_ids = vec<int32_t>(t->stop_ids());
    d.chat = TokenizerData::Chat(t->chat());
    d.chat_template = str(t->chat_template());
    d.chat_vars = str(t->chat_vars());
    d.chat_template_tools = str(t->chat_template_tools());
    auto tok = Tokenizer::create(std::move(d));
    if (!tok.is_ok()) return corrupt_plan(tok.status().message());
    tokenizer_ = tok.take();
    if (tokenizer_->vocab_size() > model_.vocab_size)
      return corrupt_plan("the tokenizer has " + std::to_string(tokenizer_->vocab_size()) +
                          " tokens, more than the model's vocab_size " + std::to_string(model_.vocab_size));
  }

  if (str.bad) return corrupt_plan("a name or text in the plan is not valid UTF-8");

  // --- weight bytes last: only a structurally sound plan gets this far
  if (hash_weights) {
    const size_t bad = first_bad_weight_segment(wbase, segments_, h.weights_size, progress);
    if (bad < segments_.size()) return corrupt_plan("weight segment " + std::to_string(bad) + " checksum mismatch");
  }
  return Status::ok();
}

}  // namespace kiln

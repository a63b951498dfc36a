#include "codegen/plan_writer.h"

#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "compiler/error.h"
#include "kernels/op.h"
#include "plan_generated.h"
#include "runtime/mapped_file.h"
#include "runtime/plan.h"
#include "runtime/plan_format.h"
#include "runtime/text.h"

namespace kiln {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

struct SegmentOut {
  uint64_t offset = 0, size = 0, xxh3 = 0;
};

// Builds the FlatBuffer. Deterministic, and with force_defaults its size depends only on the
// graph, not on the segment hashes.
void build_fb(flatbuffers::FlatBufferBuilder& b, const Graph& g, const PlanTargets& targets,
              const std::vector<SegmentOut>& segs, const std::vector<uint32_t>& value_segment) {
  b.ForceDefaults(true);
  // Kernel table: every kernel the programs use, in first-use order.
  std::vector<const OpDef*> kernels;
  std::map<const OpDef*, uint32_t> kernel_index;
  for (const auto& p : g.programs)
    for (const auto& n : p.nodes)
      if (kernel_index.emplace(n.kernel, uint32_t(kernels.size())).second) kernels.push_back(n.kernel);

  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  for (size_t i = 0; i < g.values.size(); ++i) {
    const Value& v = g.values[i];
    const bool is_w = v.region == Region::kWeights;
    tensors.push_back(fb::CreateTensor(b, b.CreateString(v.name), fb::DType(v.dtype), b.CreateVector(v.shape),
                                       fb::Region(v.region), is_w ? value_segment[i] : 0u, is_w ? 0u : v.offset,
                                       v.bytes()));
  }
  std::vector<flatbuffers::Offset<fb::Segment>> segments;
  for (const auto& s : segs) segments.push_back(fb::CreateSegment(b, s.offset, s.size, s.xxh3));
  std::vector<flatbuffers::Offset<fb::Kernel>> kvec;
  for (const OpDef* k : kernels) kvec.push_back(fb::CreateKernel(b, b.CreateString(k->name), k->version));
  std::vector<flatbuffers::Offset<fb::Program>> programs;
  for (const auto& p : g.programs) {
    std::vector<flatbuffers::Offset<fb::Launch>> launches;
    for (const auto& n : p.nodes)
      launches.push_back(fb::CreateLaunch(b, kernel_index[n.kernel], b.CreateVector(n.inputs),
                                          b.CreateVector(n.outputs), b.CreateVector(n.int_attrs),
                                          b.CreateVector(n.float_attrs)));
    std::vector<uint32_t> in, out;
    std::vector<std::string> in_names, out_names;
    for (const auto& [name, v] : p.inputs) {
      in.push_back(v);
      in_names.push_back(name);
    }
    for (const auto& [name, v] : p.outputs) {
      out.push_back(v);
      out_names.push_back(name);
    }
    programs.push_back(fb::CreateProgram(
        b, b.CreateString(p.name), b.CreateVector(in), b.CreateVectorOfStrings(in_names), b.CreateVector(out),
        b.CreateVectorOfStrings(out_names), b.CreateVector(launches), p.repeat, p.counter));
  }
  std::vector<flatbuffers::Offset<fb::Target>> tvec;
  if (targets.cpu) tvec.push_back(fb::CreateTarget(b, fb::Backend::Cpu, b.CreateVector(std::vector<uint32_t>{})));
  if (!targets.cuda_sm_archs.empty())
    tvec.push_back(fb::CreateTarget(b, fb::Backend::Cuda, b.CreateVector(targets.cuda_sm_archs)));
  const auto& m = g.info;
  auto model = fb::CreateModelInfo(b, b.CreateString(m.architecture), m.vocab_size, m.max_seq, m.batch, m.chunk,
                                   fb::DType(m.source_dtype), fb::DType(m.plan_dtype), b.CreateString(m.config_json),
                                   m.kv_bytes_per_token, m.mha_kv_bytes_per_token,
                                   b.CreateString(text::lossy_utf8(m.notes)));  // paths need not be UTF-8
  auto memory = fb::CreateMemoryPlan(b, g.weight_bytes, g.arena_bytes, g.kv_bytes, g.state_bytes, 0, g.request_bytes);
  flatbuffers::Offset<fb::DiffusionInfo> diffusion = 0;
  if (g.kind == PlanKind::kTextToImage) {
    const DiffusionInfo& d = g.diffusion;
    diffusion = fb::CreateDiffusionInfo(b, d.height, d.width, d.steps, b.CreateString(d.sampler),
                                        b.CreateString(d.timestep_spacing), b.CreateString(d.prediction_type),
                                        d.guidance, d.init_noise_sigma, d.text_len, d.control_scale,
                                        d.vae_scaling_factor, b.CreateVectorOfStrings(d.components));
  }
  std::vector<flatbuffers::Offset<fb::Adapter>> adapters;
  for (const AdapterInfo& a : g.adapters)
    adapters.push_back(fb::CreateAdapter(b, b.CreateString(text::lossy_utf8(a.name)), a.xxh3, a.weight));
  flatbuffers::Offset<fb::Tokenizer> tok = 0;
  if (g.tokenizer) {
    const TokenizerData& t = *g.tokenizer;
    std::vector<int32_t> merges;
    for (const auto& m : t.merges) merges.insert(merges.end(), {m.first, m.second});
    std::vector<flatbuffers::Offset<fb::AddedToken>> added;
    for (const auto& a : t.added)
      added.push_back(fb::CreateAddedToken(b, a.id, b.CreateString(a.content), a.special, a.lstrip, a.rstrip,
                                           a.normalized, a.single_word));
    tok = fb::CreateTokenizer(b, uint8_t(t.kind), uint8_t(t.split), b.CreateVectorOfStrings(t.vocab),
                              b.CreateVector(merges), t.ignore_merges, t.byte_fallback, t.unk_id, t.sp_prepend,
                              t.sp_prepend_first, t.decode_strip_space, b.CreateVector(added), t.bos_id, t.eos_id,
                              t.add_bos, b.CreateVector(t.stop_ids), uint8_t(t.chat), b.CreateString(t.chat_template),
                              t.pad_id, t.metaspace, t.metaspace_split, t.fuse_unk, t.nfc, b.CreateString(t.chat_vars),
                              b.CreateString(t.chat_template_tools), b.CreateVectorOfStrings(t.split_regexes));
  }
  auto root =
      fb::CreatePlan(b, kSchemaVersion, b.CreateString("kiln " KILN_VERSION_STRING), b.CreateVector(tvec), model,
                     b.CreateVector(tensors), b.CreateVector(segments), b.CreateVector(kvec), b.CreateVector(programs),
                     memory, b.CreateVector(adapters), tok, fb::PlanKind(g.kind), diffusion);
  fb::FinishPlanBuffer(b, root);
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

void write_at(FILE* f, uint64_t offset, const void* data, uint64_t n, const std::string& path) {
  if (fseeko(f, off_t(offset), SEEK_SET) != 0 || (n && std::fwrite(data, 1, size_t(n), f) != size_t(n)))
    throw CompileError(path + ": write failed: " + std::strerror(errno));
}

}  // namespace

void write_plan(const Graph& g, const PlanTargets& targets, const WeightBytesFn& weight_bytes, const std::string& path,
                const ProgressFn& progress, const OpRegistry& ops) {
  // Segment layout: one per weight value, in value order.
  std::vector<SegmentOut> segs;
  std::vector<uint32_t> value_segment(g.values.size(), 0);
  uint64_t cursor = 0;
  for (size_t i = 0; i < g.values.size(); ++i) {
    const Value& v = g.values[i];
    if (v.region != Region::kWeights) continue;
    cursor = align_up(cursor, kSegmentAlignment);
    value_segment[i] = uint32_t(segs.size());
    segs.push_back(SegmentOut{cursor, v.bytes(), 0});
    cursor += v.bytes();
  }
  const uint64_t weights_size = cursor;

  flatbuffers::FlatBufferBuilder probe(1 << 16);
  build_fb(probe, g, targets, segs, value_segment);
  const uint64_t fb_size = probe.GetSize();
  const uint64_t fb_offset = sizeof(PlanHeader);
  const uint64_t weights_offset = align_up(fb_offset + fb_size, kSegmentAlignment);

  std::string target;  // (path, or the file its symbolic link names)
  if (Status st = output_file_path(path, &target); !st.is_ok()) throw CompileError(st.message());
  std::string tmp;
  if (Status st = create_temp_beside(target, &tmp); !st.is_ok()) throw CompileError(st.message());
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw CompileError(path + ": cannot open for writing: " + std::strerror(e));
  }
  try {
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < g.values.size(); ++i) {
      const Value& v = g.values[i];
      if (v.region != Region::kWeights) continue;
      weight_bytes(v, bytes);
      SegmentOut& s = segs[value_segment[i]];
      if (bytes.size() != s.size) throw CompileError("internal: weight '" + v.name + "' changed size");
      s.xxh3 = XXH3_64bits(bytes.data(), bytes.size());
      write_at(f.get(), weights_offset + s.offset, bytes.data(), bytes.size(), path);
      if (progress) progress(s.offset + s.size, weights_size);
    }
    flatbuffers::FlatBufferBuilder b(1 << 16);
    build_fb(b, g, targets, segs, value_segment);
    if (b.GetSize() != fb_size) throw CompileError("internal: FlatBuffer size changed between builds");

    PlanHeader h;
    std::memset(&h, 0, sizeof(h));
    std::memcpy(h.magic, kPlanMagic, sizeof(kPlanMagic));
    h.format_version = kPlanFormatVersion;
    h.header_size = sizeof(PlanHeader);
    h.file_size = weights_offset + weights_size;
    h.fb_offset = fb_offset;
    h.fb_size = fb_size;
    h.fb_xxh3 = XXH3_64bits(b.GetBufferPointer(), b.GetSize());
    h.weights_offset = weights_offset;
    h.weights_size = weights_size;
    h.header_xxh3 = XXH3_64bits(&h, offsetof(PlanHeader, header_xxh3));
    write_at(f.get(), 0, &h, sizeof(h), path);
    write_at(f.get(), fb_offset, b.GetBufferPointer(), b.GetSize(), path);
    const std::vector<uint8_t> zeros(size_t(weights_offset - fb_offset - fb_size), 0);
    write_at(f.get(), fb_offset + fb_size, zeros.data(), zeros.size(), path);
    if (std::fflush(f.get()) != 0) throw CompileError(path + ": write failed: " + std::strerror(errno));
    if (std::fclose(f.release()) != 0) throw CompileError(path + ": write failed: " + std::strerror(errno));
  } catch (...) {
    f.reset();
    std::remove(tmp.c_str());
    throw;
  }
  // The runtime's own verifier, on the finished file: a plan it would refuse (a bound exceeded, a
  // launch it cannot validate) is this compile's error, not a surprise at load time.
  Status verified = Status::ok();
  try {
    verified = Plan::verify_structure(tmp, ops);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (!verified.is_ok()) {
    std::remove(tmp.c_str());
    if (verified.code() == StatusCode::kLimitExceeded)  // a bound of the runtime, not a defect
      throw CompileError("the plan is larger than the runtime takes, so nothing was written to " + path + ": " +
                         verified.message() + " (compile it smaller: a smaller image, --chunk or --max-seq)");
    throw CompileError("kiln compiled a plan that its runtime refuses, so nothing was written to " + path + ": " +
                       verified.message() + (&ops == &builtin_ops() ? " (a bug in kiln; please report it)" : ""));
  }
  if (rename_into_place(tmp, target) != 0) {
    std::remove(tmp.c_str());
    throw CompileError(path + ": cannot move the finished plan into place: " + std::strerror(errno));
  }
}

}  // namespace kiln

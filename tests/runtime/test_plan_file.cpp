// The plan file: round trip, and rejection of every single-byte flip, every truncation,
// newer versions, unknown kernels and semantically broken plans whose hashes were fixed up
// (so the verifier, not the checksum, has to catch them).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "compiler/compile.h"
#include "kernels/head_rmsnorm.h"
#include "plan_edit.h"
#include "plan_edit_check.h"
#include "runtime/context.h"
#include "runtime/mapped_file.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

// A small plan compiled from a tiny random checkpoint.
std::vector<uint8_t> tiny_plan_bytes(const TempDir& d) {
  kiln::test::write_tiny_llama(d.path());
  CompileOptions o;
  o.model_dir = d.path();
  o.output = d / "tiny.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  compile_model(o);
  return kiln::test::read_bytes(d / "tiny.kplan");
}

Status load(const std::vector<uint8_t>& b) { return kiln::test::load_status(b); }

// A fixture compiled (max_seq 8, chunk 4, then `edit`) to d/plan.kplan; its bytes. *out: its options.
std::vector<uint8_t> fixture_plan_bytes(const TempDir& d, const std::string& name, const std::string& family,
                                        const std::function<void(CompileOptions&)>& edit, CompileOptions* out) {
  CompileOptions& o = *out;
  o.model_dir = kiln::test::fixture(name, family);
  o.output = d / "plan.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  if (edit) edit(o);
  compile_model(o);
  return kiln::test::read_bytes(o.output);
}

// A plan's kernels of this name, as kiln::test::kernel_versions counts them.
int versions(const std::vector<uint8_t>& b, const std::string& kernel, uint32_t want) {
  auto plan = kiln::Plan::load_memory(b.data(), b.size());
  REQUIRE(plan.is_ok());
  return kiln::test::kernel_versions(*plan.value(), kernel, want);
}

// The prefill program's (program 0's) last_rows launch.
fb::Launch* last_rows_launch(fb::Plan* p) {
  auto* ls = p->mutable_programs()->GetMutableObject(0)->mutable_launches();
  for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i)
    if (p->kernels()->Get(ls->Get(i)->kernel())->name()->str() == "last_rows") return ls->GetMutableObject(i);
  FAIL("the prefill program has no last_rows launch");
  return nullptr;
}

// The tensor whose name ends in suffix.
uint32_t tensor_named(const fb::Plan* p, const std::string& suffix) {
  for (flatbuffers::uoffset_t i = 0; i < p->tensors()->size(); ++i) {
    const std::string n = p->tensors()->Get(i)->name()->str();
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) return i;
  }
  FAIL("no tensor named *" << suffix);
  return 0;
}

// The prefill program's (program 0's) nth launch of this kernel.
fb::Launch* prefill_launch(fb::Plan* p, const std::string& kernel, int nth = 0) {
  auto* ls = p->mutable_programs()->GetMutableObject(0)->mutable_launches();
  for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i)
    if (p->kernels()->Get(ls->Get(i)->kernel())->name()->str() == kernel && nth-- == 0) return ls->GetMutableObject(i);
  FAIL("the prefill program has no " << kernel << " launch");
  return nullptr;
}

// The position of a program's input or output of this name.
flatbuffers::uoffset_t input_slot(const fb::Program* p, const std::string& name) {
  for (flatbuffers::uoffset_t i = 0; i < p->input_names()->size(); ++i)
    if (p->input_names()->Get(i)->str() == name) return i;
  FAIL("no input " << name);
  return 0;
}
flatbuffers::uoffset_t output_slot(const fb::Program* p, const std::string& name) {
  for (flatbuffers::uoffset_t i = 0; i < p->output_names()->size(); ++i)
    if (p->output_names()->Get(i)->str() == name) return i;
  FAIL("no output " << name);
  return 0;
}

using kiln::test::header_of;
using kiln::test::mutable_root;
using kiln::test::rehash;

}  // namespace

TEST_CASE("plan file: round trip keeps the model, programs and memory plan") {
  TempDir d;
  auto bytes = tiny_plan_bytes(d);
  auto r = Plan::load_file(d / "tiny.kplan");
  REQUIRE(r.is_ok());
  const Plan& p = *r.value();
  CHECK(p.model().architecture == "LlamaForCausalLM");
  CHECK(p.model().vocab_size == 16);
  CHECK(p.model().max_seq == 8);
  CHECK(p.model().chunk == 4);
  const auto cfg = kiln::test::read_bytes(d / "config.json");
  CHECK(p.model().config_json == std::string(cfg.begin(), cfg.end()));
  CHECK(p.has_target("cpu"));
  CHECK(p.has_target("cuda"));  // --target all is the default
  REQUIRE(p.targets().size() == 2);
  CHECK(p.targets()[1].sm_archs == std::vector<uint32_t>{90});
  REQUIRE(p.find_program("prefill") >= 0);
  REQUIRE(p.find_program("decode") >= 0);
  REQUIRE(p.find_program("score") >= 0);
  // embedding + 9 per layer (RoPE and the KV write fused) + norm + lm_head + sample, and in prefill
  // the last_rows gather before the norm
  CHECK(p.programs()[size_t(p.find_program("prefill"))].launches.size() == 14);
  CHECK(p.programs()[size_t(p.find_program("score"))].launches.size() == 13);
  // ingest: the embedding, and of the one layer what writes its KV cache (norm, qkv, rope + write);
  // no outputs.
  REQUIRE(p.find_program("ingest") >= 0);
  CHECK(p.programs()[size_t(p.find_program("ingest"))].launches.size() == 4);
  CHECK(p.programs()[size_t(p.find_program("ingest"))].outputs.empty());
  CHECK(p.memory().kv_bytes == 2 * 256);  // k and v: 8 positions × 1 kv head × 4 dims × f32 = 128 B, each 256-aligned
  CHECK(p.memory().arena_bytes > 0);
  CHECK(header_of(bytes).weights_offset % kSegmentAlignment == 0);
  for (const auto& s : p.segments()) CHECK(s.offset % kSegmentAlignment == 0);
  // Tied embeddings: lm_head reuses the embedding, so no lm_head tensor exists.
  for (const auto& t : p.tensors()) CHECK(t.name != "lm_head.weight");
  // Compiling twice gives the same bytes (the writer is deterministic).
  CompileOptions o;
  o.model_dir = d.path();
  o.output = d / "again.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  compile_model(o);
  CHECK(kiln::test::read_bytes(d / "again.kplan") == bytes);
}

TEST_CASE("plan file: every single flipped byte is rejected") {
  TempDir d;
  auto bytes = tiny_plan_bytes(d);
  REQUIRE(load(bytes).is_ok());
  size_t rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] ^= 0x5a;
    Status st = load(bytes);
    bytes[i] ^= 0x5a;
    if (!st.is_ok()) ++rejected;
    else FAIL_CHECK("flip at byte " << i << " was accepted");
  }
  CHECK(rejected == bytes.size());
  MESSAGE("rejected all " << rejected << " single-byte flips");
}

TEST_CASE("plan file: every truncation and an extension are rejected") {
  TempDir d;
  auto bytes = tiny_plan_bytes(d);
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = Plan::load_memory(bytes.data(), n);
    REQUIRE_FALSE(r.is_ok());
  }
  auto longer = bytes;
  longer.push_back(0);
  CHECK(load(longer).message().find("truncated or extended") != std::string::npos);
  // And through the file loader.
  kiln::test::write_bytes(d / "cut.kplan", std::vector<uint8_t>(bytes.begin(), bytes.begin() + 1000));
  auto r = Plan::load_file(d / "cut.kplan");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("cut.kplan") != std::string::npos);
  CHECK_FALSE(Plan::load_file(d / "absent.kplan").is_ok());
}

TEST_CASE("plan file: newer format and schema versions, and older schemas, get a specific error") {
  TempDir d;
  auto bytes = tiny_plan_bytes(d);
  auto v = bytes;
  PlanHeader h = header_of(v);
  h.format_version = kPlanFormatVersion + 1;
  std::memcpy(v.data(), &h, sizeof(h));
  rehash(v);
  Status st = load(v);
  CHECK(st.code() == StatusCode::kUnsupported);
  CHECK(st.message().find("format version 2 is newer") != std::string::npos);

  auto s = bytes;
  REQUIRE(mutable_root(s)->mutate_schema_version(kSchemaVersion + 1));
  rehash(s);
  st = load(s);
  CHECK(st.code() == StatusCode::kUnsupported);
  CHECK(st.message().find("schema version " + std::to_string(kSchemaVersion + 1) +
                          " is newer than this runtime supports (" + std::to_string(kSchemaVersion) + ")") !=
        std::string::npos);

  // Plans of older schemas (1: diffusion state in the KV-cache region, no plan kind; 2: Metaspace
  // read as the Prepend normalizer) are refused by name.
  for (uint32_t older = 1; older < kSchemaVersion; ++older) {
    auto old = bytes;
    REQUIRE(mutable_root(old)->mutate_schema_version(older));
    rehash(old);
    st = load(old);
    CHECK(st.code() == StatusCode::kUnsupported);
    CHECK(st.message().find("schema version " + std::to_string(older) + " is older than this runtime's (" +
                            std::to_string(kSchemaVersion) + "): compile the checkpoint again") != std::string::npos);
  }
}

TEST_CASE("plan file: semantic corruption behind valid checksums is caught by the verifier") {
  TempDir d;
  const auto bytes = tiny_plan_bytes(d);
  struct Case {
    const char* name;
    void (*edit)(fb::Plan*);
    const char* expect;
  };
  const Case cases[] = {
      {"kernel version", [](fb::Plan* p) { p->mutable_kernels()->GetMutableObject(0)->mutate_version(99); },
       "version 99, which this runtime does not provide"},
      {"launch input out of range",
       [](fb::Plan* p) {
         p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(1)->mutable_inputs()->Mutate(
             0, 9999);
       },
       "input index out of range"},
      {"launch kernel out of range",
       [](fb::Plan* p) {
         p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(0)->mutate_kernel(77);
       },
       "kernel out of range"},
      {"tensor shape vs size",
       [](fb::Plan* p) { p->mutable_tensors()->GetMutableObject(0)->mutable_shape()->Mutate(0, 17); },
       "size does not match"},
      {"tensor offset",
       [](fb::Plan* p) {
         auto* ts = p->mutable_tensors();
         for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i)
           if (ts->Get(i)->region() == fb::Region::Arena) {
             ts->GetMutableObject(i)->mutate_offset(uint64_t(1) << 40);
             return;
           }
       },
       "extends past the arena"},
      {"segment checksum", [](fb::Plan* p) { p->mutable_segments()->GetMutableObject(0)->mutate_xxh3(12345); },
       "checksum mismatch"},
      {"segment order", [](fb::Plan* p) { p->mutable_segments()->GetMutableObject(1)->mutate_offset(0); },
       "out of order"},
      {"model limits", [](fb::Plan* p) { p->mutable_model()->mutate_max_seq(0); }, "out of range"},
      {"cache length", [](fb::Plan* p) { p->mutable_model()->mutate_max_seq(9); }, "cache length differs"},
      {"head attribute",
       [](fb::Plan* p) {
         // attention's n_heads: launch 4 of the prefill program is attention (see llama.cpp order;
         // rope and kv_write are one rope_kv_write launch in a plan with a CUDA target)
         auto* l = p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(4);
         l->mutable_int_attrs()->Mutate(0, 3);
       },
       "has shape [4, 16], expected [4, 20]"},
      {"sliding window attribute",
       [](fb::Plan* p) {
         auto* l = p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(4);
         l->mutable_int_attrs()->Mutate(3, 1 << 20);  // the window: longer than the cache
       },
       "sliding window is negative or longer than the cache"},
      {"negative sliding window",
       [](fb::Plan* p) {
         auto* l = p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(4);
         l->mutable_int_attrs()->Mutate(3, -2);
       },
       "sliding window is negative or longer than the cache"},
      {"accumulate attribute",
       [](fb::Plan* p) {
         p->mutable_programs()
             ->GetMutableObject(0)
             ->mutable_launches()
             ->GetMutableObject(2)
             ->mutable_int_attrs()
             ->Mutate(0, 7);
       },
       "accumulate must be 0 or 1"},
      {"write into weights",
       [](fb::Plan* p) {
         auto* l = p->mutable_programs()->GetMutableObject(0)->mutable_launches()->GetMutableObject(1);
         l->mutable_outputs()->Mutate(0, l->inputs()->Get(1));  // rmsnorm writes its own weight
       },
       "read-only weights region"},
      {"memory region size", [](fb::Plan* p) { p->mutable_memory()->mutate_arena_bytes(uint64_t(1) << 50); },
       "TiB of memory besides its weights"},
      // (found by an outside test: 6 GiB zeroed for a 136 KiB model; two layers on one cache)
      {"arena far larger than its tensors",
       [](fb::Plan* p) { p->mutable_memory()->mutate_arena_bytes(uint64_t(6) << 30); },
       "arena is 6442450944 bytes, more than its tensors need"},
      {"KV caches overlap",
       [](fb::Plan* p) {
         auto* ts = p->mutable_tensors();
         int64_t first = -1;
         for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i)
           if (ts->Get(i)->region() == fb::Region::KvCache) {
             if (first < 0) first = i;
             else if (ts->Get(i)->size_bytes() == ts->Get(uint32_t(first))->size_bytes()) {
               ts->GetMutableObject(i)->mutate_offset(ts->Get(uint32_t(first))->offset());
               return;
             }
           }
       },
       "KV caches overlap"},
      {"tensor dtype", [](fb::Plan* p) { p->mutable_tensors()->GetMutableObject(0)->mutate_dtype(fb::DType(9)); },
       "invalid dtype"},
      {"program repeat", [](fb::Plan* p) { p->mutable_programs()->GetMutableObject(0)->mutate_repeat(0); },
       "repeats out of range"},
      {"loop without counter", [](fb::Plan* p) { p->mutable_programs()->GetMutableObject(0)->mutate_repeat(5); },
       "repeats without a loop counter"},
      {"loop counter", [](fb::Plan* p) { p->mutable_programs()->GetMutableObject(0)->mutate_counter(0); },
       "loop counter is not one of its i32 (1,) inputs"},
      {"plan kind", [](fb::Plan* p) { p->mutate_kind(fb::PlanKind(7)); }, "plan kind is invalid"},
      {"LLM plan marked text-to-image", [](fb::Plan* p) { p->mutate_kind(fb::PlanKind::TextToImage); },
       "a text-to-image plan has LLM limits"},
      {"request region size", [](fb::Plan* p) { p->mutable_memory()->mutate_request_bytes(uint64_t(1) << 50); },
       "TiB of memory besides its weights"},
      {"48 TiB in three regions of 16",
       [](fb::Plan* p) {
         p->mutable_memory()->mutate_arena_bytes(uint64_t(1) << 44);
         p->mutable_memory()->mutate_kv_bytes(uint64_t(1) << 44);
         p->mutable_memory()->mutate_request_bytes(uint64_t(1) << 44);
       },
       "more than 4 TiB of memory"},
      {"inputs alias (n_valid is start_pos)",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         prog->mutable_inputs()->Mutate(input_slot(prog, "n_valid"),
                                        prog->inputs()->Get(input_slot(prog, "start_pos")));
       },
       "inputs 'start_pos' and 'n_valid' are one tensor"},
      {"inputs alias (tokens is sampling)",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         prog->mutable_inputs()->Mutate(input_slot(prog, "tokens"), prog->inputs()->Get(input_slot(prog, "sampling")));
       },
       "are one tensor"},
      {"next_token bound to a state input",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         prog->mutable_outputs()->Mutate(output_slot(prog, "next_token"), prog->inputs()->Get(0));
       },
       "output 'next_token' is not written by any launch"},
      {"next_token written by another op",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         auto* outs = prog->mutable_outputs();
         const uint32_t logits = outs->Get(output_slot(prog, "logits"));
         outs->Mutate(output_slot(prog, "next_token"), logits);
       },
       "next_token is not the output of a sample launch"},
      {"float attribute finite as a double only",
       [](fb::Plan* p) {
         auto* ls = p->mutable_programs()->GetMutableObject(0)->mutable_launches();
         for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i)
           if (ls->Get(i)->float_attrs()->size() > 0) {
             ls->GetMutableObject(i)->mutable_float_attrs()->Mutate(0, 1e300);
             return;
           }
       },
       "not a finite f32"},
      {"last_rows n_valid is start_pos",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         last_rows_launch(p)->mutable_inputs()->Mutate(1, prog->inputs()->Get(input_slot(prog, "start_pos")));
       },
       "(last_rows): its n_valid operand is not the program's n_valid input"},
      {"last_rows reads the tokens",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         last_rows_launch(p)->mutable_inputs()->Mutate(0, prog->inputs()->Get(input_slot(prog, "tokens")));
       },
       "(last_rows): x 'prefill.tokens' has dtype i32"},
      {"last_rows writes the logits",
       [](fb::Plan* p) {
         auto* prog = p->mutable_programs()->GetMutableObject(0);
         last_rows_launch(p)->mutable_outputs()->Mutate(0, prog->outputs()->Get(output_slot(prog, "logits")));
       },
       "(last_rows): y 'prefill.logits' has shape [1, 16], expected [1, 8]"},
      {"embedding table shorter than vocab", [](fb::Plan* p) { p->mutable_model()->mutate_vocab_size(100000); },
       "fewer than vocab_size 100000"},
      {"tensor name not UTF-8",
       [](fb::Plan* p) {
         const_cast<char*>(p->mutable_tensors()->GetMutableObject(0)->mutable_name()->c_str())[0] = char(0xC0);
       },
       "not valid UTF-8"},
      {"tensor in the request region",
       [](fb::Plan* p) {
         auto* ts = p->mutable_tensors();
         for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i)
           if (ts->Get(i)->region() == fb::Region::KvCache) {
             ts->GetMutableObject(i)->mutate_region(fb::Region::Request);  // an LLM plan has no request bytes
             return;
           }
       },
       "extends past the request region"},
      // Found by fuzz_plan's field mode: an i32 tensor at a 4-byte offset passes the dtype's
      // alignment, but the sampling rows are read as SampleParams (8-byte fields).
      {"sampling params at a 4-byte offset",
       [](fb::Plan* p) {
         auto* ts = p->mutable_tensors();
         for (flatbuffers::uoffset_t i = 0; i < ts->size(); ++i)
           if (ts->Get(i)->name()->str() == "decode.sampling")  // state tensors sit 64 bytes apart
             ts->GetMutableObject(i)->mutate_offset(ts->Get(i)->offset() + 4);
       },
       "params must be 8-byte aligned"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    auto b = bytes;
    c.edit(mutable_root(b));
    rehash(b);
    Status st = load(b);
    REQUIRE_FALSE(st.is_ok());
    CHECK(st.message().find(c.expect) != std::string::npos);
    MESSAGE(c.name << ": " << st.message());
  }
}

// (found by an outside test: each edit verified and then hung the CPU for seconds a token, or ran
// on silently with other logits)
TEST_CASE(
    "plan file: MoE routing, quantized operands and overwritten activations edited behind valid checksums are refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(
      d, "top2_f32", "mixtral",
      [](CompileOptions& c) {
        c.quantize = "int4";
        c.group_size = 32;
      },
      &o);
  REQUIRE(load(bytes).is_ok());
  auto tensor = tensor_named;
  auto launch = [](fb::Plan* p, const std::string& kernel, int nth = 0) { return prefill_launch(p, kernel, nth); };
  kiln::test::check_edits_refused(
      bytes,
      {
          {"router over the LM head's rows",
           [&](fb::Plan* p) { launch(p, "moe_route")->mutable_inputs()->Mutate(1, tensor(p, "lm_head.weight")); },
           "holds other experts than its router"},
          {"int4 scales read from the arena",
           [&](fb::Plan* p) {
             fb::Launch* l = nullptr;
             for (int i = 0; !l; ++i)
               if (fb::Launch* m = launch(p, "matmul", i);
                   p->tensors()->Get(m->inputs()->Get(1))->dtype() == fb::DType::I4)
                 l = m;
             l->mutable_inputs()->Mutate(4, l->inputs()->Get(0));
           },
           "a quantized weight, scale or zero point, is not a plan weight"},
          {"expert weights read from the arena",
           [&](fb::Plan* p) {
             auto* l = launch(p, "moe_experts");
             l->mutable_inputs()->Mutate(6, tensor(p, "prefill.layers.0.expert_weights"));
           },
           "is not a plan weight"},
          {"activation placed over a live one",
           [&](fb::Plan* p) {
             const uint32_t x = tensor(p, "prefill.x");
             p->mutable_tensors()
                 ->GetMutableObject(tensor(p, "prefill.layers.0.qkv"))
                 ->mutate_offset(p->tensors()->Get(x)->offset());
           },
           "overwrote part of it"},
      });
  // A token routed to more experts than 64 is refused when compiled, and in a plan.
  const std::string cfg_dir = d / "wide";
  kiln::test::copy_dir(o.model_dir, cfg_dir);
  nlohmann::json cfg = nlohmann::json::parse(kiln::test::read_bytes(cfg_dir + "/config.json"));
  cfg["num_experts_per_tok"] = 65;
  cfg["num_local_experts"] = 128;
  std::ofstream(cfg_dir + "/config.json") << cfg.dump();
  CompileOptions w = o;
  w.model_dir = cfg_dir;
  w.output = d / "wide.kplan";
  CHECK_THROWS_WITH_AS(compile_model(w), doctest::Contains("num_experts_per_tok is more than 64"), std::exception);
}

// add version 2's gate (Qwen2-MoE's shared expert): edited behind valid checksums to a tensor of
// another dtype or shape, the plan is refused at load.
TEST_CASE("plan file: a gated add whose gate is edited to another tensor is refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "shared_f32", "qwen2_moe", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  // The prefill program's gated add (three operands, the third present).
  auto gated_add = [](fb::Plan* p) -> fb::Launch* {
    auto* ls = p->mutable_programs()->GetMutableObject(0)->mutable_launches();
    for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i)
      if (p->kernels()->Get(ls->Get(i)->kernel())->name()->str() == "add" && ls->Get(i)->inputs()->size() == 3 &&
          ls->Get(i)->inputs()->Get(2) != kNoTensor)
        return ls->GetMutableObject(i);
    FAIL("the prefill program has no gated add");
    return nullptr;
  };
  struct Case {
    const char* name;
    int from;  // the gate becomes this operand of the launch (0: a, 1: b), or the program's start_pos (-1)
    const char* expect;
  };
  for (const Case& c :
       {Case{"gate is the residual stream", 0, "(add): gate 'prefill.x' has shape [4, 64], expected [4, 1]"},
        Case{"gate is the shared expert's output", 1, "(add): gate 'prefill.layers.0.shared_out' has shape"},
        Case{"gate is start_pos", -1, "(add): gate 'start_pos' has dtype i32"}}) {
    CAPTURE(std::string(c.name));
    std::vector<uint8_t> b = bytes;
    fb::Plan* p = mutable_root(b);
    fb::Launch* l = gated_add(p);
    const fb::Program* prog = p->programs()->Get(0);
    l->mutable_inputs()->Mutate(2, c.from >= 0 ? l->inputs()->Get(flatbuffers::uoffset_t(c.from))
                                               : prog->inputs()->Get(input_slot(prog, "start_pos")));
    rehash(b);
    const Status st = load(b);
    REQUIRE(!st.is_ok());
    CHECK_MESSAGE(st.message().find(c.expect) != std::string::npos, st.message());
  }
}

// GPT-OSS's operands (attention version 4's sinks, moe_route version 2's logit bias, moe_experts version
// 4's biases and activation) edited behind valid checksums: refused at load.
TEST_CASE(
    "plan file: GPT-OSS sinks, router bias, expert biases and activation edited behind valid checksums are refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "hub_f32", "gpt_oss", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  kiln::test::check_edits_refused(
      bytes,
      {
          {"sinks are the expert ids",
           [](fb::Plan* p) {
             prefill_launch(p, "attention")->mutable_inputs()->Mutate(5, tensor_named(p, "layers.0.expert_ids"));
           },
           "(attention): sinks 'prefill.layers.0.expert_ids' has dtype i32"},
          {"sinks are the router's bias (3 experts, 4 heads)",
           [](fb::Plan* p) {
             prefill_launch(p, "attention")->mutable_inputs()->Mutate(5, tensor_named(p, "layers.0.mlp.router.bias"));
           },
           "(attention): sinks 'model.layers.0.mlp.router.bias' has shape [3], expected [4]"},
          {"gate|up biases are the down biases",
           [](fb::Plan* p) {
             fb::Launch* l = prefill_launch(p, "moe_experts");
             l->mutable_inputs()->Mutate(10, l->inputs()->Get(11));
           },
           "(moe_experts): gu_bias 'model.layers.0.mlp.experts.down_proj_bias' has shape"},
          {"activation 2", [](fb::Plan* p) { prefill_launch(p, "moe_experts")->mutable_int_attrs()->Mutate(2, 2); },
           "expert activation 2 is not 0 (SwiGLU) or 1 (clamped SwiGLU)"},
          {"limit -7", [](fb::Plan* p) { prefill_launch(p, "moe_experts")->mutable_float_attrs()->Mutate(1, -7.0); },
           "the clamped SwiGLU's alpha is not finite or its limit not positive and finite"},
          {"logit bias 2", [](fb::Plan* p) { prefill_launch(p, "moe_route")->mutable_int_attrs()->Mutate(5, 2); },
           "routing attributes are invalid"},
          {"logit bias without the bias",
           [](fb::Plan* p) { prefill_launch(p, "moe_route")->mutable_inputs()->Mutate(2, kNoTensor); },
           "a logit bias needs the bias input"},
          {"scales on float experts",
           [](fb::Plan* p) {
             fb::Launch* l = prefill_launch(p, "moe_experts");
             l->mutable_inputs()->Mutate(6, l->inputs()->Get(10));
             l->mutable_inputs()->Mutate(7, l->inputs()->Get(11));
           },
           "moe_experts version 4 with scales takes i8, i4 or f8e4m3 weights, not f32"},
          {"a zero point on float experts",
           [](fb::Plan* p) {
             fb::Launch* l = prefill_launch(p, "moe_experts");
             l->mutable_inputs()->Mutate(8, l->inputs()->Get(10));
           },
           "moe_experts version 4 with zero points takes i4 weights, not f32"},
      });
}

// ERNIE 4.5 MoE's routing (moe_route version 3's norm_min, which the loader holds to a finite f32 as every float
// attribute; only its plans take version 3: GLM-4.5's keep 1, GPT-OSS's 2) edited behind valid checksums: refused at
// load.
TEST_CASE("plan file: ERNIE 4.5 MoE's routing floor and bias edited behind valid checksums are refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "hub_tied_f32", "ernie4_5_moe", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "moe_route", 3) == 1);
  CHECK(versions(fixture_plan_bytes(d, "air_f32", "glm4_moe", nullptr, &o), "moe_route", 1) == 1);
  CHECK(versions(fixture_plan_bytes(d, "hub_f32", "gpt_oss", nullptr, &o), "moe_route", 2) == 1);
  kiln::test::check_edits_refused(
      bytes,
      {
          {"norm_min inf",
           [](fb::Plan* p) {
             prefill_launch(p, "moe_route")->mutable_float_attrs()->Mutate(1, std::numeric_limits<double>::infinity());
           },
           "has an attribute that is not a finite f32"},
          {"norm_min NaN",
           [](fb::Plan* p) {
             prefill_launch(p, "moe_route")->mutable_float_attrs()->Mutate(1, std::numeric_limits<double>::quiet_NaN());
           },
           "has an attribute that is not a finite f32"},
          {"norm_min past f32",
           [](fb::Plan* p) { prefill_launch(p, "moe_route")->mutable_float_attrs()->Mutate(1, 1e39); },
           "has an attribute that is not a finite f32"},
          {"noaux_tc without its bias",
           [](fb::Plan* p) { prefill_launch(p, "moe_route")->mutable_inputs()->Mutate(2, kNoTensor); },
           "noaux_tc routing needs the correction bias"},
      });
}

// BLOOM's operands (attention version 5's ALiBi slopes) edited behind valid checksums: refused at load. Only BLOOM's
// plans take attention version 5 (GPT-OSS's keep 4, the others 3).
TEST_CASE("plan file: BLOOM's ALiBi slopes edited behind valid checksums are refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "hub_f32", "bloom", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "attention", 5) == 1);
  CHECK(versions(fixture_plan_bytes(d, "hub_f32", "gpt_oss", nullptr, &o), "attention", 4) == 1);
  CHECK(versions(fixture_plan_bytes(d, "hub_f32", "gpt2", nullptr, &o), "attention", 3) == 1);
  kiln::test::check_edits_refused(
      bytes,
      {
          {"slopes are the tokens",
           [](fb::Plan* p) {
             prefill_launch(p, "attention")->mutable_inputs()->Mutate(6, tensor_named(p, "prefill.tokens"));
           },
           "(attention): alibi 'prefill.tokens' has dtype i32"},
          {"slopes are the embedding norm's bias (64 values, 4 heads)",
           [](fb::Plan* p) {
             prefill_launch(p, "attention")->mutable_inputs()->Mutate(6, tensor_named(p, "model.embed_norm.bias"));
           },
           "(attention): alibi 'model.embed_norm.bias' has shape [64], expected [4]"},
      });
}

// OLMo's clip_qkv is one clamp launch a layer, only in plans whose config sets it; bounds edited behind valid
// checksums are refused.
TEST_CASE("plan file: OLMo's clip_qkv bounds edited behind valid checksums are refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "clip_bias_f32", "olmo", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "clamp", 1) == 1);
  CHECK(versions(fixture_plan_bytes(d, "hub_tied_f32", "olmo", nullptr, &o), "clamp", 1) == 0);
  {  // One clamp a layer (a RoPE a layer) in every program, on the qkv matmul's output, right before its RoPE.
    std::vector<uint8_t> b = bytes;
    const fb::Plan* p = kiln::test::mutable_root(b);
    auto name_of = [&](const fb::Launch* l) { return p->kernels()->Get(l->kernel())->name()->str(); };
    int programs = 0;
    for (const fb::Program* prog : *p->programs()) {
      int clamps = 0, ropes = 0;
      const auto* ls = prog->launches();
      for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i) {
        const std::string k = name_of(ls->Get(i));
        ropes += k == "rope" || k == "rope_kv_write";
        if (k != "clamp") continue;
        ++clamps;
        REQUIRE((i > 0 && i + 1 < ls->size()));
        const fb::Launch *before = ls->Get(i - 1), *clamp = ls->Get(i), *after = ls->Get(i + 1);
        CHECK(name_of(before) == "matmul");
        CHECK(before->outputs()->Get(0) == clamp->inputs()->Get(0));
        CHECK(clamp->outputs()->Get(0) == clamp->inputs()->Get(0));  // (in place)
        CHECK((name_of(after) == "rope" || name_of(after) == "rope_kv_write"));
        CHECK(after->inputs()->Get(2) == clamp->outputs()->Get(0));
        CHECK((clamp->float_attrs()->Get(0) == -0.6 && clamp->float_attrs()->Get(1) == 0.6));
      }
      CHECK(clamps == ropes);
      programs += ropes == 2;  // (the fixture's 2 layers)
    }
    CHECK(programs == 4);  // (prefill, score, decode and ingest)
  }
  const char* why = "clamp bounds must be finite, lo <= hi";
  const char* finite = "has an attribute that is not a finite f32";  // (every op's, before clamp's own check)
  kiln::test::check_edits_refused(
      bytes,
      {{"lo above hi", [](fb::Plan* p) { prefill_launch(p, "clamp")->mutable_float_attrs()->Mutate(0, 1.0); }, why},
       {"an infinite hi",
        [](fb::Plan* p) {
          prefill_launch(p, "clamp", 1)->mutable_float_attrs()->Mutate(1, std::numeric_limits<double>::infinity());
        },
        finite},
       {"a NaN lo", [](fb::Plan* p) { prefill_launch(p, "clamp")->mutable_float_attrs()->Mutate(0, NAN); }, finite},
       {"hi past f32", [](fb::Plan* p) { prefill_launch(p, "clamp")->mutable_float_attrs()->Mutate(1, 1e39); },
        finite}});
}

// activation version 2 added relu² (Arcee); version 1 (what a runtime before it read) refuses the kind,
// and version 2 refuses kinds past it.
TEST_CASE("plan file: an activation kind its version does not have is refused") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "relu2_bias_f32", "arcee", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  // Phi's MLP activation (tanh GELU) stays version 1: a runtime from before relu² reads its plans.
  CHECK(versions(fixture_plan_bytes(d, kiln::test::fixture_names("phi").at(0), "phi", nullptr, &o), "activation", 1) ==
        1);
  kiln::test::check_edits_refused(
      bytes, {{"relu2 as version 1", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "activation", 1); },
               "unknown activation kind"},
              {"kind 5", [](fb::Plan* p) { prefill_launch(p, "activation")->mutable_int_attrs()->Mutate(0, 5); },
               "unknown activation kind"}});
}

// Apertus's xIELU (activation version 4: the kind and its four parameters, one launch a layer in each program); other
// plans keep versions 1-3. A version 3 launch of it, parameters that are not finite in f32 (the loader's check of every
// float attribute), and parameters on another kind are refused.
TEST_CASE("plan file: xIELU (activation 4) and what its version refuses") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "hub_f32", "apertus", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "activation", 4) == 1);
  CHECK(versions(fixture_plan_bytes(d, "gelu_f32", "apertus", nullptr, &o), "activation", 1) == 1);  // (exact GELU)
  auto fattr = [](int i, double v) {
    return [i, v](fb::Plan* p) {
      prefill_launch(p, "activation")->mutable_float_attrs()->Mutate(flatbuffers::uoffset_t(i), v);
    };
  };
  kiln::test::check_edits_refused(
      bytes,
      {{"xIELU as version 3", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "activation", 3); },
        "operand or attribute count does not match"},
       {"a NaN alpha_p", fattr(0, NAN), "not a finite f32"},
       {"an eps past f32", fattr(3, 1e39), "not a finite f32"},
       {"an infinite beta", fattr(2, INFINITY), "not a finite f32"},
       {"relu with parameters", [](fb::Plan* p) { prefill_launch(p, "activation")->mutable_int_attrs()->Mutate(0, 5); },
        "must be 0 for a kind other than xIELU"},
       {"kind 7", [](fb::Plan* p) { prefill_launch(p, "activation")->mutable_int_attrs()->Mutate(0, 7); },
        "unknown activation kind"}});
  // xIELU in an older version's launch (OPT's relu: version 3, without the parameters)
  const std::vector<uint8_t> opt = fixture_plan_bytes(d, "hub_f32", "opt", nullptr, &o);
  REQUIRE(versions(opt, "activation", 3) == 1);
  kiln::test::check_edits_refused(
      opt,
      {{"xIELU in version 3", [](fb::Plan* p) { prefill_launch(p, "activation")->mutable_int_attrs()->Mutate(0, 6); },
        "unknown activation kind"}});
}

// Phi-3.5-MoE's sparsemixer (moe_route version 4: method 3 and jitter_eps); other MoE plans keep versions 1-3. The
// method in an older version, jitter_eps on another method or not finite in f32, and the sparsemixer with what it
// never reads (a third expert, renormalization), are refused.
TEST_CASE("plan file: Phi-3.5-MoE's sparsemixer (moe_route 4) and what its version refuses") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "hub_longrope_f32", "phimoe", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "moe_route", 4) == 1);
  CHECK(versions(fixture_plan_bytes(d, "top2_f32", "mixtral", nullptr, &o), "moe_route", 1) == 1);
  auto route = [](fb::Plan* p) { return prefill_launch(p, "moe_route"); };
  kiln::test::check_edits_refused(
      bytes,
      {{"sparsemixer as version 3", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "moe_route", 3); },
        "operand or attribute count does not match"},
       {"a NaN jitter_eps", [&](fb::Plan* p) { route(p)->mutable_float_attrs()->Mutate(2, NAN); }, "not a finite f32"},
       {"greedy with a jitter_eps", [&](fb::Plan* p) { route(p)->mutable_int_attrs()->Mutate(0, 0); },
        "jitter_eps must be 0"},
       {"method 4", [&](fb::Plan* p) { route(p)->mutable_int_attrs()->Mutate(0, 4); },
        "routing attributes are invalid"},
       {"renormalized", [&](fb::Plan* p) { route(p)->mutable_int_attrs()->Mutate(4, 1); }, "sparsemixer routing picks"},
       {"sigmoid scores", [&](fb::Plan* p) { route(p)->mutable_int_attrs()->Mutate(1, 1); },
        "sparsemixer routing picks"},
       {"a negative jitter_eps", [&](fb::Plan* p) { route(p)->mutable_float_attrs()->Mutate(2, -0.01); },
        "sparsemixer routing picks"}});
  const std::vector<uint8_t> ernie = fixture_plan_bytes(d, "hub_tied_f32", "ernie4_5_moe", nullptr, &o);
  kiln::test::check_edits_refused(
      ernie, {{"the sparsemixer in version 3",
               [](fb::Plan* p) { prefill_launch(p, "moe_route")->mutable_int_attrs()->Mutate(0, 3); },
               "routing attributes are invalid"}});
}

// FlexOlmo's moe_experts (version 5: accumulate 0 writes the experts' sum into the branch buffer its norm reads); other
// MoE plans keep versions 1-4. An accumulate other than 0 and 1, and the attribute in version 4, are refused.
TEST_CASE("plan file: FlexOlmo's moe_experts (version 5's accumulate) and what its version refuses") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "top2_bias_f32", "flex_olmo", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "moe_experts", 5) == 1);
  CHECK(versions(fixture_plan_bytes(d, "top2_f32", "olmoe", nullptr, &o), "moe_experts", 1) == 1);
  kiln::test::check_edits_refused(
      bytes,
      {{"accumulate 2", [](fb::Plan* p) { prefill_launch(p, "moe_experts")->mutable_int_attrs()->Mutate(3, 2); },
        "accumulate 2 is not 0 (y = the sum) or 1 (y +=)"},
       {"version 5's attributes as version 4", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "moe_experts", 4); },
        "operand or attribute count does not match"}});
}

// GPT-2's and OPT's learned positions (embedding version 3: the program's start_pos and a position table of max_seq
// rows or more) and OPT's relu (activation version 3); other plans keep embedding 2. What the versions do not have,
// and a position table or start_pos that is not what version 3 reads, are refused.
TEST_CASE("plan file: learned positions (embedding 3) and relu (activation 3), and what their versions refuse") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> gpt2 = fixture_plan_bytes(d, "hub_f32", "gpt2", nullptr, &o);
  REQUIRE(load(gpt2).is_ok());
  CHECK(versions(gpt2, "embedding", 3) == 1);
  CHECK(versions(gpt2, "activation", 1) == 1);  // (tanh GELU)
  CHECK(versions(fixture_plan_bytes(d, kiln::test::llama_fixture_names().at(0), "llama", nullptr, &o), "embedding",
                 2) == 1);
  auto input = [](fb::Plan* p, flatbuffers::uoffset_t i, uint32_t to) {
    prefill_launch(p, "embedding")->mutable_inputs()->Mutate(i, to);
  };
  kiln::test::check_edits_refused(
      gpt2, {{"positions as version 2", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "embedding", 2); },
              "operand or attribute count does not match"},
             {"no start_pos", [&](fb::Plan* p) { input(p, 2, kNoTensor); }, "come together"},
             {"no position table", [&](fb::Plan* p) { input(p, 3, kNoTensor); }, "come together"},
             {"the tokens as start_pos",
              [&](fb::Plan* p) { input(p, 2, prefill_launch(p, "embedding")->inputs()->Get(0)); }, "start_pos"},
             {"a LayerNorm's weight as the position table",
              [&](fb::Plan* p) { input(p, 3, tensor_named(p, "model.norm.weight")); }, "pos_table"}});
  const std::vector<uint8_t> opt = fixture_plan_bytes(d, "hub_f32", "opt", nullptr, &o);
  REQUIRE(load(opt).is_ok());
  CHECK(versions(opt, "embedding", 3) == 1);
  CHECK(versions(opt, "activation", 3) == 1);  // (relu)
  kiln::test::check_edits_refused(
      opt, {{"relu as version 2", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "activation", 2); },
             "unknown activation kind"},
            {"kind 6", [](fb::Plan* p) { prefill_launch(p, "activation")->mutable_int_attrs()->Mutate(0, 6); },
             "unknown activation kind"}});
}

// Cohere's LayerNorms have no bias (layernorm version 2) and its q/k norms are LayerNorms with each head's own
// weights (head_rmsnorm version 3's mode); other plans keep layernorm 1 (Phi's; the diffusion plans':
// tests/diffusion/test_diffusion_api.cpp) and head_rmsnorm 2 (Qwen3's per head, OLMo 2's whole, EXAONE 4.0's),
// which a runtime from before reads. What each version does not have is refused.
TEST_CASE("plan file: Cohere's bias-less LayerNorm and per-head q/k LayerNorms, and what their versions refuse") {
  TempDir d;
  CompileOptions o;
  const std::vector<uint8_t> bytes = fixture_plan_bytes(d, "qk_norm_f32", "cohere", nullptr, &o);
  REQUIRE(load(bytes).is_ok());
  CHECK(versions(bytes, "layernorm", 2) == 1);
  CHECK(versions(bytes, "head_rmsnorm", 3) == 1);
  auto first = [&](const char* family) {
    return fixture_plan_bytes(d, kiln::test::fixture_names(family).at(0), family, nullptr, &o);
  };
  CHECK(versions(first("phi"), "layernorm", 1) == 1);
  CHECK(versions(first("starcoder2"), "layernorm", 1) == 1);   // (its LayerNorms have biases)
  CHECK(versions(first("starcoder2"), "activation", 1) == 1);  // (no relu²)
  CHECK(versions(first("stablelm"), "layernorm", 1) == 1);     // (its LayerNorms have biases)
  CHECK(versions(first("nemotron"), "layernorm", 1) == 1);     // (LayerNorm1P: biases, (1 + w) folded)
  CHECK(versions(first("nemotron"), "activation", 1) == 1);    // (gelu_hd24_tied_f32: the exact GELU, version 1)
  CHECK(versions(fixture_plan_bytes(d, "relu2_bias_f32", "nemotron", nullptr, &o), "activation", 2) == 1);  // (relu²)
  CHECK(versions(first("stablelm"), "head_rmsnorm", 3) == 1);  // (per-head LayerNorms)
  for (const char* family : {"qwen3", "olmo2", "exaone4"}) {
    CAPTURE(std::string(family));
    CHECK(versions(first(family), "head_rmsnorm", 2) == 1);
  }
  auto mode = [](fb::Plan* p, int64_t m) { prefill_launch(p, "head_rmsnorm")->mutable_int_attrs()->Mutate(4, m); };
  kiln::test::check_edits_refused(
      bytes,
      {{"a bias-less LayerNorm as version 1", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "layernorm", 1); },
        "missing operand b (layernorm version 1 has a bias)"},
       {"norm mode 4", [&](fb::Plan* p) { mode(p, 4); }, "unknown norm mode"},
       {"norm mode -1", [&](fb::Plan* p) { mode(p, -1); }, "unknown norm mode"},
       {"per-head weights read as one head's", [&](fb::Plan* p) { mode(p, kiln::kHeadNormCenter); },
        "has shape [64], expected [16]"},
       {"the mode as version 2", [](fb::Plan* p) { kiln::test::set_kernel_version(p, "head_rmsnorm", 2); },
        "operand or attribute count does not match the kernel"}});
}

TEST_CASE("plan file: a tokenizer with more tokens than the model's vocabulary is refused, compiled or edited") {
  TempDir d;
  const std::string tok = kiln::test::fixtures_root() + "/tokenizers/bytelevel";  // 1211 ids
  auto folder = [&](const std::string& dir, int64_t vocab) {
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    kiln::test::TinyLlama tl;
    tl.vocab = vocab;
    kiln::test::write_tiny_llama(dir, tl);
    kiln::test::write_bytes(dir + "/tokenizer.json", kiln::test::read_bytes(tok + "/tokenizer.json"));
  };
  CompileOptions o;
  o.model_dir = d / "small";
  o.output = d / "small.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  folder(o.model_dir, 1000);
  CHECK(kiln::test::compile_error(o).find("1211 tokens, more than the model's vocab_size 1000") != std::string::npos);

  o.model_dir = d / "fits";
  o.output = d / "fits.kplan";
  folder(o.model_dir, 1211);
  REQUIRE(kiln::test::compile_error(o).empty());
  auto b = kiln::test::read_bytes(o.output);
  REQUIRE(load(b).is_ok());
  mutable_root(b)->mutable_model()->mutate_vocab_size(1210);  // the embedding still has every row
  rehash(b);
  const Status st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("1211 tokens, more than the model's vocab_size 1210") != std::string::npos);
}

TEST_CASE("plan file: an LM head that accumulates into logits no launch wrote is refused") {
  // A vocabulary of 50: no other tensor of the plan has the logits' size, so their arena bytes
  // can only be stale (the check accepts a view: a tensor with exactly a written tensor's bytes).
  TempDir d;
  kiln::test::TinyLlama tl;
  tl.vocab = 50;
  kiln::test::write_tiny_llama(d.path(), tl);
  CompileOptions o;
  o.model_dir = d.path();
  o.output = d / "v50.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  REQUIRE(kiln::test::compile_error(o).empty());
  auto b = kiln::test::read_bytes(o.output);
  auto* prog = mutable_root(b)->mutable_programs()->GetMutableObject(0);
  const uint32_t logits = prog->outputs()->Get(output_slot(prog, "logits"));
  auto* ls = prog->mutable_launches();
  int edited = 0;
  for (flatbuffers::uoffset_t i = 0; i < ls->size(); ++i)
    if (ls->Get(i)->outputs()->Get(0) == logits) ls->GetMutableObject(i)->mutable_int_attrs()->Mutate(0, 1), ++edited;
  REQUIRE(edited == 1);
  rehash(b);
  const Status st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("reads arena tensor 'prefill.logits' before any launch of the program writes it") !=
        std::string::npos);
}

TEST_CASE("plan file: a model chunk that disagrees with the prefill program is refused by the context") {
  // kiln_plan_get_info reports ModelInfo.chunk; the context runs the prefill program's. An edit
  // that makes them differ loads (the plan alone is consistent) but no context is made of it.
  TempDir d;
  auto b = tiny_plan_bytes(d);
  const int64_t chunk = mutable_root(b)->model()->chunk();
  for (int64_t edited : {chunk - 1, chunk + 1}) {
    auto e = b;
    mutable_root(e)->mutable_model()->mutate_chunk(edited);
    rehash(e);
    auto plan = Plan::load_memory(e.data(), e.size());
    REQUIRE(plan.is_ok());
    auto ctx = Context::create(plan.value(), ContextOptions{});
    REQUIRE_FALSE(ctx.is_ok());
    CHECK(ctx.status().code() == StatusCode::kCorruptPlan);
    CHECK(ctx.status().message().find("takes " + std::to_string(chunk) +
                                      " tokens per row, but the plan's model says its chunk is " +
                                      std::to_string(edited)) != std::string::npos);
  }
  auto plan = Plan::load_memory(b.data(), b.size());
  REQUIRE(plan.is_ok());
  CHECK(Context::create(plan.value(), ContextOptions{}).is_ok());
}

namespace {

// The bytes of a tiny LLaMA plan with the byte-level fixture's tokenizer (LLaMA-3's template and
// split), its tokenizer.json edited by `edit` first.
std::vector<uint8_t> tiny_plan_with_tokenizer(const TempDir& d, const std::function<void(nlohmann::json&)>& edit) {
  const std::string tok = kiln::test::fixtures_root() + "/tokenizers/bytelevel";
  REQUIRE(::mkdir((d / "m").c_str(), 0700) == 0);
  kiln::test::TinyLlama tl;
  tl.vocab = 1211;
  kiln::test::write_tiny_llama(d / "m", tl);
  nlohmann::json tj = nlohmann::json::parse(kiln::test::read_bytes(tok + "/tokenizer.json"));
  edit(tj);
  std::ofstream(d / "m/tokenizer.json") << tj.dump();
  kiln::test::write_bytes(d / "m/tokenizer_config.json", kiln::test::read_bytes(tok + "/tokenizer_config.json"));
  CompileOptions o;
  o.model_dir = d / "m";
  o.output = d / "m.kplan";
  o.max_seq = 8;
  o.chunk = 4;
  REQUIRE(kiln::test::compile_error(o).empty());
  const auto bytes = kiln::test::read_bytes(o.output);
  REQUIRE(load(bytes).is_ok());
  return bytes;
}

}  // namespace

TEST_CASE("plan file: a chat template or its variables edited behind valid checksums are refused at load") {
  TempDir d;
  const auto base = tiny_plan_with_tokenizer(d, [](nlohmann::json&) {});
  auto edit_string = [&](const flatbuffers::String* (*field)(const kiln::fb::Tokenizer*), const std::string& from,
                         const std::string& to) {
    auto b = base;
    const flatbuffers::String* s = field(mutable_root(b)->tokenizer());
    REQUIRE(s);
    std::string text = s->str();
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    REQUIRE(from.size() == to.size());
    std::memcpy(const_cast<char*>(s->c_str()) + at, to.data(), to.size());
    rehash(b);
    return load(b);
  };
  Status st = edit_string([](const kiln::fb::Tokenizer* t) { return t->chat_template(); }, "{% for", "{% fo ");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("chat template: line 1: the statement 'fo' is not supported") != std::string::npos);
  st = edit_string([](const kiln::fb::Tokenizer* t) { return t->chat_vars(); }, "{", "[");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("the chat template's variables are not a JSON object") != std::string::npos);
  auto b = base;
  mutable_root(b)->mutable_tokenizer()->mutate_chat(1);  // schema 4's hard-coded LLaMA-3 format
  rehash(b);
  st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("tokenizer kind is invalid") != std::string::npos);
  b = base;
  mutable_root(b)->mutable_tokenizer()->mutate_chat(0);  // a template without the Jinja format
  rehash(b);
  st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("a chat template without the Jinja chat format") != std::string::npos);
}

TEST_CASE("plan file: split regexes edited behind valid checksums are refused at load") {
  TempDir d;
  // LLaMA-3's split wrapped in (?:…): a pattern kiln has no scanner for, so the plan carries it.
  const auto base = tiny_plan_with_tokenizer(d, [](nlohmann::json& tj) {
    auto& split = tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"];
    split = "(?:" + split.get<std::string>() + ")";
  });
  auto plan = Plan::load_memory(base.data(), base.size());
  REQUIRE(plan.is_ok());
  REQUIRE(plan.value()->tokenizer()->data().split == TokenizerData::Split::kRegex);
  auto b = base;
  {  // \p{L} → \h{L}: Oniguruma's hex-digit escape, which PCRE2 reads otherwise
    const flatbuffers::String* s = mutable_root(b)->tokenizer()->split_regexes()->Get(0);
    const size_t at = s->str().find("\\p{L}");
    REQUIRE(at != std::string::npos);
    const_cast<char*>(s->c_str())[at + 1] = 'h';
  }
  rehash(b);
  Status st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("the escape \\h") != std::string::npos);
  b = base;
  mutable_root(b)->mutable_tokenizer()->mutate_split(1);  // LLaMA-3's scanner, with regexes beside it
  rehash(b);
  st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("split regexes without the regex split") != std::string::npos);
  b = base;
  mutable_root(b)->mutable_tokenizer()->mutate_split(6);
  rehash(b);
  st = load(b);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.message().find("tokenizer kind is invalid") != std::string::npos);
}

// The weight hash that a plan load runs on several threads: the lowest bad segment whatever the
// threads' timing, progress on the calling thread only and increasing, and every byte counted.
TEST_CASE("plan weights: the parallel hash finds the lowest bad segment and reports progress on the caller") {
  const size_t n = 300;
  std::vector<uint8_t> bytes;
  std::vector<SegmentInfo> segs;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t size = 64 + (i * 7919) % 4096, offset = bytes.size();
    for (uint64_t b = 0; b < size; ++b) bytes.push_back(uint8_t((i * 31 + b * 17) & 0xff));
    segs.push_back({offset, size, XXH3_64bits(bytes.data() + offset, size)});
  }
  uint64_t total = 0;
  for (const SegmentInfo& s : segs) total += s.size;
  const std::thread::id caller = std::this_thread::get_id();
  for (uint64_t parallel_bytes : {uint64_t(0), uint64_t(1) << 40}) {  // threads from 0 bytes on, or never
    CAPTURE(parallel_bytes);
    uint64_t last = 0;
    bool on_caller = true, increasing = true;
    const Plan::Progress progress = [&](uint64_t done, uint64_t t) {
      on_caller = on_caller && std::this_thread::get_id() == caller && t == total;
      increasing = increasing && done > last;
      last = done;
    };
    CHECK(first_bad_weight_segment(bytes.data(), segs, total, progress, parallel_bytes) == n);
    CHECK(on_caller);
    CHECK(increasing);
    CHECK(last == total);
    for (int rep = 0; rep < 20; ++rep) {
      auto bad = segs;
      const size_t lo = size_t(37 + rep * 11) % n, hi = std::min(n - 1, lo + 1 + size_t(rep) * 13);
      bad[hi].xxh3 ^= 1;  // two bad segments: the lower one is the answer
      bad[lo].xxh3 ^= 1;
      CHECK(first_bad_weight_segment(bytes.data(), bad, total, nullptr, parallel_bytes) == lo);
    }
    auto last_bad = segs;
    last_bad.back().xxh3 ^= 1;
    CHECK(first_bad_weight_segment(bytes.data(), last_bad, total, nullptr, parallel_bytes) == n - 1);
  }
  CHECK(first_bad_weight_segment(bytes.data(), {}, 0, nullptr, 0) == 0);
  // A progress callback that throws (at the latest on the final call): the helpers are joined and
  // the exception reaches the caller.
  const Plan::Progress throws = [](uint64_t, uint64_t) { throw std::runtime_error("stop"); };
  CHECK_THROWS_AS(first_bad_weight_segment(bytes.data(), segs, total, throws, 0), std::runtime_error);
}

TEST_CASE("output temporaries: a handled SIGTERM or SIGINT removes them, an ignored SIGINT stays ignored") {
  TempDir d;
  const std::string target = d / "out.kplan";
  // In a child: the kiln CLI's handlers, a temporary as a writer makes, then the signal.
  auto child = [&](int sig, bool ignore_first) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (ignore_first) ::signal(sig, SIG_IGN);
      kiln::remove_temps_on_signals();
      std::string tmp;
      if (!kiln::create_temp_beside(target, &tmp).is_ok()) ::_exit(3);
      ::raise(sig);
      ::_exit(7);  // (reached only when the signal is ignored)
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
  };
  for (const int sig : {SIGTERM, SIGINT}) {
    CAPTURE(sig);
    const int status = child(sig, false);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);  // ended as the signal would have
    CHECK(kiln::test::temp_files_beside(target).empty());
  }
  // A shell's background job ignores SIGINT: kiln keeps it ignored (and its temporary stays until
  // the writer renames or removes it).
  const int status = child(SIGINT, true);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 7);
  CHECK(kiln::test::temp_files_beside(target).size() == 1);
}

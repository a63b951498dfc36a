// libFuzzer target for the plan loader and verifier, three ways (the first byte, mod 3, picks):
// - 0, raw: the bytes are a plan file; it must be rejected or verified, never crash;
// - 1, semantic: the bytes are a FlatBuffer, wrapped by this harness in a valid header with
//   correct hashes (segment hashes recomputed over zero weights), so the fuzzer explores the
//   verifier's semantic checks;
// - 2, fields: the bytes are edits to the decoded fields of a real compiled plan (a LLaMA with its
//   tokenizer in f32 and in bf16 with the fused ops, a DeepSeek MoE in bf16 and with asymmetric int4
//   weights (quantized matmuls, experts and kv_b rows), a text-to-image loop; compiled
//   from the fixtures at start-up), applied through the schema's reflection data
//   (tests/plan_mutate.h) and re-sealed, so every mutant is a well-formed plan that only the
//   semantic verifier can refuse. See field_mode for the layout.
// A plan that verifies is then run as a host would (tests/plan_run.h: generate and the tokenizer,
// or the whole text-to-image pipeline); in the raw and semantic modes also every program once on a
// raw executor with zeroed step state. Verification must guarantee that no kernel touches memory
// out of bounds.
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "compiler/compile.h"
#include "plan_generated.h"
#include "plan_mutate.h"
#include "plan_run.h"
#include "runtime/context.h"
#include "runtime/executor.h"
#include "runtime/plan_format.h"
#include "test_util.h"

namespace {

// Executions per mode, and how many plans verified, printed when the fuzzer exits (the record in
// tests/fuzz/RESULTS.md counts the field mode's executions from it).
uint64_t g_runs[3] = {0, 0, 0}, g_verified[3] = {0, 0, 0};
int g_mode = 0;

void print_counts() {
  std::fprintf(stderr, "fuzz_plan: executions raw %llu (verified %llu), semantic %llu (%llu), fields %llu (%llu)\n",
               (unsigned long long)g_runs[0], (unsigned long long)g_verified[0], (unsigned long long)g_runs[1],
               (unsigned long long)g_verified[1], (unsigned long long)g_runs[2], (unsigned long long)g_verified[2]);
}

// Loads a plan and, if it verifies, runs it as a host would; with `every_program`, also runs each
// program once on a raw executor (a crafted plan's programs need not be the ones a host calls; the
// field mode's mutants keep their base plan's programs, which the host run already reaches).
void replay(const uint8_t* file, size_t size, bool every_program) {
  auto plan = kiln::Plan::load_memory(file, size);
  if (!plan.is_ok()) return;
  ++g_verified[g_mode];
  // Only plans small enough to run here (ASan aborts on absurd allocations rather than
  // throwing; the runtime's own answer to those is an out-of-memory status).
  const kiln::Plan& p = *plan.value();
  const auto& m = p.memory();
  // (Each term is at most kMaxPlanMemory, verified, so the sum does not wrap.)
  if (m.arena_bytes + m.kv_bytes + m.state_bytes + m.request_bytes + m.workspace_bytes > (64u << 20) ||
      p.model().batch * p.model().vocab_size > (1 << 22))
    return;
  kiln::test::run_plan(plan.value());
  if (!every_program) return;
  // Every program, whatever its contract, with the step state left zero (always in bounds).
  auto exec = kiln::make_cpu_executor(plan.value(), 1);
  if (!exec.is_ok()) return;
  for (size_t i = 0; i < p.programs().size(); ++i) (void)exec.value()->run(int(i));
}

// The field mode's base plans with their field sites, compiled once at start-up. Each lives in its
// own pages, writable only while the harness edits it: a runtime that wrote into a loaded plan
// (mapped read-only in real use) crashes here too, and cannot spoil the base for later inputs.
struct Base {
  uint8_t* plan = nullptr;
  size_t size = 0, mapped = 0;
  std::vector<kiln::test::FieldSite> sites;
  void protect(int prot) const {
    if (::mprotect(plan, mapped, prot) != 0) std::abort();
  }
};
std::vector<Base> g_bases;

void add_base(const std::vector<uint8_t>& schema, kiln::CompileOptions o, const kiln::test::TempDir& d) {
  o.output = d / ("p" + std::to_string(g_bases.size()) + ".kplan");
  const std::string err = kiln::test::compile_error(o);
  if (!err.empty()) {
    std::fprintf(stderr, "fuzz_plan: compiling a base plan from %s failed: %s\n", o.model_dir.c_str(), err.c_str());
    std::abort();
  }
  const std::vector<uint8_t> bytes = kiln::test::read_bytes(o.output);
  Base b;
  b.size = bytes.size();
  b.mapped = (b.size + 4095) / 4096 * 4096;
  void* mem = ::mmap(nullptr, b.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) std::abort();
  b.plan = static_cast<uint8_t*>(mem);
  std::memcpy(b.plan, bytes.data(), b.size);
  b.protect(PROT_READ);
  b.sites = kiln::test::PlanFields(schema, bytes).sites();
  g_bases.push_back(std::move(b));
}

void make_bases() {
  const std::vector<uint8_t> schema = kiln::test::read_bytes(KILN_PLAN_BFBS);
  kiln::test::TempDir d;
  kiln::CompileOptions o;
  // A LLaMA with the real byte-level fixture tokenizer, for every target (f32), then in bf16
  // (where the fused ops are chosen).
  o.model_dir = d / "m";
  if (::mkdir(o.model_dir.c_str(), 0700) != 0) std::abort();
  kiln::test::write_tiny_llama_with_tokenizer(o.model_dir);
  o.max_seq = 8;
  o.chunk = 4;
  o.target = "all";
  add_base(schema, o, d);
  o.dtype = "bf16";
  add_base(schema, o, d);
  // A DeepSeek-V3 MoE (MLA, routed experts), bf16.
  o = kiln::CompileOptions{};
  o.model_dir = kiln::test::fixture("v3_noaux", "deepseek");
  o.max_seq = 8;
  o.chunk = 4;
  o.dtype = "bf16";
  add_base(schema, o, d);
  // A text-to-image loop at the smallest size: one step, one prompt row (no guidance: half the
  // work of each mutant that verifies; the guided batch is in the raw mode's seed).
  o = kiln::CompileOptions{};
  o.model_dir = kiln::test::fixtures_root() + "/diffusion/sd15_tiny/pipeline";
  o.height = 8;
  o.width = 8;
  o.steps = 1;
  o.guidance = 1.0;
  o.dtype = "f32";
  o.target = "cpu";
  add_base(schema, o, d);
  // The DeepSeek MoE with asymmetric int4 weights in groups of 32 (matmul version 4, moe_experts version
  // 3, head_matmul version 2: kv_b's rows, W_UK read down its columns), f32 compute, CPU. (Last, so that
  // the earlier bases keep their indices.)
  o = kiln::CompileOptions{};
  o.model_dir = kiln::test::fixture("v3_noaux", "deepseek");
  o.max_seq = 8;
  o.chunk = 4;
  o.quantize = "int4";
  o.group_size = 32;
  o.asymmetric = true;
  add_base(schema, o, d);
}

// Field mode. data[1] picks the base plan; then up to 16 edits of 12 bytes each: a site index
// (3 bytes, little-endian, modulo the plan's site count), an operation, and an 8-byte operand v:
//   op % 4 == 0: the site's v-th edge value (plan_mutate.h's mutations);
//   op % 4 == 1: v itself (an integer field) or v's bits as a double (a float field);
//   op % 4 == 2: the current value plus the signed low byte of v (a float field: times 1 + that/64);
//   op % 4 == 3: the value of site v (modulo the count), so that fields alias each other (an
//                integer field takes a float's value truncated, a float field an integer's).
// Sites are indices into plans compiled at start-up, so a saved field-mode input means the same
// edits only while the compiler and the fixtures are unchanged: turn a crash it finds into a named
// case in tests/runtime/test_plan_file.cpp.
void field_mode(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const Base& base = g_bases[data[1] % g_bases.size()];
  const size_t n_sites = base.sites.size();
  uint8_t* plan = base.plan;
  // Edited in place and restored afterwards (a copy of a plan with its weights per execution
  // was a fifth of the run time): each edit's old bytes, then the header with its checksums.
  std::vector<std::pair<uint64_t, uint64_t>> undo;  // (offset, the 8 bytes there before)
  std::array<uint8_t, sizeof(kiln::PlanHeader)> header;
  std::memcpy(header.data(), plan, header.size());
  base.protect(PROT_READ | PROT_WRITE);
  const uint8_t* rec = data + 2;
  size_t left = size - 2;
  for (int k = 0; k < 16 && left >= 12; ++k, rec += 12, left -= 12) {
    const auto& site = base.sites[(size_t(rec[0]) | size_t(rec[1]) << 8 | size_t(rec[2]) << 16) % n_sites];
    const uint8_t op = rec[3] % 4;
    uint64_t v;
    std::memcpy(&v, rec + 4, sizeof(v));
    auto [i, f] = kiln::test::read_site(plan, site);
    if (op == 0) {
      const auto edges = kiln::test::mutations(plan, site);
      std::tie(i, f) = edges[v % edges.size()];
    } else if (op == 1) {
      i = int64_t(v);
      std::memcpy(&f, &v, sizeof(f));
    } else if (op == 2) {
      i = int64_t(uint64_t(i) + uint64_t(int64_t(int8_t(v))));
      f *= 1.0 + double(int8_t(v)) / 64.0;
    } else {  // another field's value, converted between integer and float fields
      const auto& from = base.sites[v % n_sites];
      std::tie(i, f) = kiln::test::read_site(plan, from);
      if (kiln::test::is_float_site(from) && !kiln::test::is_float_site(site))
        i = std::fabs(f) < 9.2e18 ? int64_t(f) : 0;  // NaN and out of range: 0
      else if (!kiln::test::is_float_site(from)) f = double(i);
    }
    uint64_t old_bytes = 0;
    std::memcpy(&old_bytes, plan + site.offset, std::min<size_t>(8, base.size - site.offset));
    undo.emplace_back(site.offset, old_bytes);
    kiln::test::write_site(plan, site, i, f);
  }
  kiln::test::rehash(plan);
  base.protect(PROT_READ);
  replay(plan, base.size, false);
  base.protect(PROT_READ | PROT_WRITE);
  for (size_t k = undo.size(); k-- > 0;)
    std::memcpy(plan + undo[k].first, &undo[k].second, std::min<size_t>(8, base.size - undo[k].first));
  std::memcpy(plan, header.data(), header.size());
  base.protect(PROT_READ);
}

// Semantic mode: data is a FlatBuffer. Keep it aligned and bounded.
void semantic_mode(const uint8_t* data, size_t size) {
  if (size < 8 || size > (1u << 20)) return;
  std::vector<uint8_t> fbuf(data, data + size);
  flatbuffers::Verifier v(fbuf.data(), fbuf.size(), 64, 100000);
  if (!kiln::fb::VerifyPlanBuffer(v)) return;
  kiln::fb::Plan* root = kiln::fb::GetMutablePlan(fbuf.data());
  // Lay out the weights section as the segments ask (zeros), with their hashes fixed up.
  uint64_t weights_size = 0;
  if (root->segments())
    for (const auto* s : *root->segments())
      if (s->offset() < (1u << 22) && s->size() < (1u << 22))
        weights_size = std::max<uint64_t>(weights_size, s->offset() + s->size());
  if (weights_size > (1u << 22)) return;
  const std::vector<uint8_t> zeros(size_t(weights_size), 0);
  // A crafted buffer may overlap tables, so one mutation can change what another reads:
  // re-verify after each one and give up on the input if it no longer verifies.
  const flatbuffers::uoffset_t n_segs = root->segments() ? root->segments()->size() : 0;
  for (flatbuffers::uoffset_t i = 0; i < n_segs; ++i) {
    flatbuffers::Verifier again(fbuf.data(), fbuf.size(), 64, 100000);
    if (!kiln::fb::VerifyPlanBuffer(again)) return;
    root = kiln::fb::GetMutablePlan(fbuf.data());
    auto* s = root->mutable_segments()->GetMutableObject(i);
    if (s->offset() <= weights_size && s->size() <= weights_size - s->offset())
      s->mutate_xxh3(XXH3_64bits(zeros.data() + s->offset(), s->size()));
  }
  kiln::PlanHeader h;
  std::memset(&h, 0, sizeof(h));
  std::memcpy(h.magic, kiln::kPlanMagic, sizeof(h.magic));
  h.format_version = kiln::kPlanFormatVersion;
  h.header_size = sizeof(h);
  h.fb_offset = sizeof(h);
  h.fb_size = fbuf.size();
  h.fb_xxh3 = XXH3_64bits(fbuf.data(), fbuf.size());
  h.weights_offset =
      (sizeof(h) + fbuf.size() + kiln::kSegmentAlignment - 1) / kiln::kSegmentAlignment * kiln::kSegmentAlignment;
  h.weights_size = weights_size;
  h.file_size = h.weights_offset + weights_size;
  h.header_xxh3 = XXH3_64bits(&h, offsetof(kiln::PlanHeader, header_xxh3));
  std::vector<uint8_t> file(size_t(h.file_size), 0);
  std::memcpy(file.data(), &h, sizeof(h));
  std::memcpy(file.data() + h.fb_offset, fbuf.data(), fbuf.size());
  replay(file.data(), file.size(), true);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  make_bases();
  std::atexit(print_counts);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  g_mode = data[0] % 3;
  ++g_runs[g_mode];
  switch (g_mode) {
    case 0: {
      const std::vector<uint8_t> file(data + 1, data + size);  // an aligned copy
      replay(file.data(), file.size(), true);
      break;
    }
    case 1:
      semantic_mode(data + 1, size - 1);
      break;
    default:
      field_mode(data, size);
  }
  return 0;
}

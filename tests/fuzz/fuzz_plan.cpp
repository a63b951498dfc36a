// libFuzzer target for the plan loader and verifier, two ways (first byte picks):
// - raw: the bytes are a plan file; it must be rejected or verified, never crash;
// - semantic: the bytes are a FlatBuffer, wrapped by this harness in a valid header with
//   correct hashes (segment hashes recomputed over zero weights), so the fuzzer explores the
//   verifier's semantic checks. A plan that verifies is then replayed on the CPU (prefill and
//   decode through a Context, then every program once on a raw executor with zeroed step state,
//   which reaches the diffusion kernels too): verification must guarantee that no kernel touches
//   memory out of bounds.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "plan_generated.h"
#include "runtime/context.h"
#include "runtime/executor.h"
#include "runtime/plan_format.h"

namespace {

void replay(const std::vector<uint8_t>& file) {
  auto plan = kiln::Plan::load_memory(file.data(), file.size());
  if (!plan.is_ok()) return;
  // Only plans small enough to run here (ASan aborts on absurd allocations rather than
  // throwing; the runtime's own answer to those is an out-of-memory status).
  const kiln::Plan& p = *plan.value();
  const auto& m = p.memory();
  if (m.arena_bytes + m.kv_bytes + m.state_bytes > (64u << 20) || p.model().batch * p.model().vocab_size > (1 << 22))
    return;
  kiln::ContextOptions co;
  co.n_threads = 1;
  auto ctx = kiln::Context::create(plan.value(), co);
  if (ctx.is_ok()) {
    const int32_t ids[3] = {0, 1, 2};
    (void)ctx.value()->prefill(0, ids, 3);
    std::vector<int32_t> step(size_t(p.model().batch), 1);
    (void)ctx.value()->decode(step.data());
  }
  // Every program, whatever its contract, with the step state left zero (always in bounds).
  auto exec = kiln::make_cpu_executor(plan.value(), 1);
  if (!exec.is_ok()) return;
  for (size_t i = 0; i < p.programs().size(); ++i) (void)exec.value()->run(int(i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    std::vector<uint8_t> file(data + 1, data + size);
    replay(file);
    return 0;
  }
  // Semantic mode: data+1 is a FlatBuffer. Keep it aligned and bounded.
  const size_t fb_size = size - 1;
  if (fb_size < 8 || fb_size > (1u << 20)) return 0;
  std::vector<uint8_t> fbuf(data + 1, data + size);
  flatbuffers::Verifier v(fbuf.data(), fbuf.size(), 64, 100000);
  if (!kiln::fb::VerifyPlanBuffer(v)) return 0;
  kiln::fb::Plan* root = kiln::fb::GetMutablePlan(fbuf.data());
  // Lay out the weights section as the segments ask (zeros), with their hashes fixed up.
  uint64_t weights_size = 0;
  if (root->segments())
    for (const auto* s : *root->segments())
      if (s->offset() < (1u << 22) && s->size() < (1u << 22))
        weights_size = std::max<uint64_t>(weights_size, s->offset() + s->size());
  if (weights_size > (1u << 22)) return 0;
  const std::vector<uint8_t> zeros(size_t(weights_size), 0);
  // A crafted buffer may overlap tables, so one mutation can change what another reads:
  // re-verify after each one and give up on the input if it no longer verifies.
  const flatbuffers::uoffset_t n_segs = root->segments() ? root->segments()->size() : 0;
  for (flatbuffers::uoffset_t i = 0; i < n_segs; ++i) {
    flatbuffers::Verifier again(fbuf.data(), fbuf.size(), 64, 100000);
    if (!kiln::fb::VerifyPlanBuffer(again)) return 0;
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
  replay(file);
  return 0;
}

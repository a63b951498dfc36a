// The fixed plan-file header and the layout rules shared by the writer (codegen/) and the
// loader (runtime/plan.cpp).
//
// File layout (all integers little-endian):
//   [0, 128)                        PlanHeader
//   [128, fb_offset)                zero bytes
//   [fb_offset, fb_offset+fb_size)  FlatBuffer (schema/plan.fbs, identifier "KILN")
//   ...                             zero bytes up to weights_offset (a multiple of 4096)
//   [weights_offset, file_size)     weight segments, each aligned to kSegmentAlignment, zero
//                                   bytes between and after them
// Every byte of the file is covered by a check: the header by header_xxh3, the FlatBuffer by
// fb_xxh3, each segment by its own XXH3 in the FlatBuffer, and every gap must be zero.
#pragma once
#include <cstdint>

namespace kiln {

constexpr char kPlanMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
constexpr uint32_t kPlanFormatVersion = 1;  // the container layout (this header)
constexpr uint32_t kSchemaVersion = 5;      // Plan.schema_version: what the FlatBuffer holds
constexpr uint64_t kSegmentAlignment = 4096;
constexpr uint64_t kArenaAlignment = 256;
// The most memory a plan may ask for besides its weights (arena, KV cache, state, workspace and
// request regions together): 4 TiB. The compiler refuses larger plans, the loader too.
constexpr uint64_t kMaxPlanMemory = uint64_t(1) << 42;
// The most launches one replay of a program may run (its launches × repeat): a bound on the work
// a plan can ask for. The compiler refuses plans past it, the loader too.
constexpr uint64_t kMaxLaunchesPerRun = uint64_t(1) << 24;

struct PlanHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t header_size;  // sizeof(PlanHeader)
  uint64_t file_size;
  uint64_t fb_offset;
  uint64_t fb_size;
  uint64_t fb_xxh3;
  uint64_t weights_offset;
  uint64_t weights_size;  // file_size - weights_offset
  uint8_t reserved[56];   // zero
  uint64_t header_xxh3;   // XXH3-64 of the 120 bytes before this field
};
static_assert(sizeof(PlanHeader) == 128, "PlanHeader must stay 128 bytes");

}  // namespace kiln

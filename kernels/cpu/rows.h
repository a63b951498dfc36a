// Row-wise CPU kernels over a (batch·chunk)-row activation: the valid rows only (row_is_valid), split
// evenly among the workers. A static split over every row would hand the padding rows of a partly
// filled chunk to one worker and the tokens to the other (a 128-token prompt in a 256-row chunk ran
// on one core).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// fn(r, worker) for every valid row r in increasing order within each worker's share, blocks of at
// least `grain` valid rows. n_valid null: every row.
template <typename Fn>
void parallel_valid_rows(ThreadPool& pool, const int32_t* n_valid, int64_t batch, int64_t chunk, int64_t grain,
                         const Fn& fn) {
  auto count = [&](int64_t b) { return n_valid ? std::clamp<int64_t>(n_valid[b], 0, chunk) : chunk; };
  int64_t total = 0;
  for (int64_t b = 0; b < batch; ++b) total += count(b);
  pool.parallel_for(total, grain, [&](int64_t i0, int64_t i1, int worker) {
    int64_t b = 0, before = 0;  // the batch row holding valid row i0, and the valid rows before it
    while (before + count(b) <= i0) before += count(b++);
    for (int64_t i = i0; i < i1; ++i) {
      while (i - before >= count(b)) before += count(b++);
      fn(b * chunk + (i - before), worker);
    }
  });
}

}  // namespace kiln

// A small fixed-size thread pool for the CPU kernels. Owned by a runtime Context (never
// global). parallel_for splits [0, n) into contiguous static blocks, one per worker, so a
// given element is always computed by the same code path in the same order: results are
// bit-identical for every thread count.
//
// Each worker also owns a scratch buffer of `scratch_floats` floats, sized by the context at
// creation from what the plan's launches need, so kernels never allocate during replay.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0, uint64_t scratch_floats = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(scratch_.size()); }

  // Calls fn(begin, end, worker) for disjoint blocks covering [0, n). Blocks are at least
  // `grain` long. Runs inline when there is only one block. Not reentrant.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  // Scratch of worker w (valid during parallel_for), at least scratch_floats() floats.
  float* scratch(int w) { return scratch_[size_t(w)].data(); }
  uint64_t scratch_floats() const { return scratch_.empty() ? 0 : scratch_[0].size(); }

 private:
  void worker_loop(int w);

  std::vector<std::vector<float>> scratch_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_block_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace kiln

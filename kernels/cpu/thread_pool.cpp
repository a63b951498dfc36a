// Fixed-size pool: worker 0 is the calling thread, workers 1..n-1 are std::threads that wait
// for a generation counter to advance. See kernels/thread_pool.h.
#include "kernels/thread_pool.h"

#include <algorithm>

namespace kiln {

ThreadPool::ThreadPool(int n_threads, uint64_t scratch_floats) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  scratch_.resize(size_t(n_threads));
  for (auto& s : scratch_) s.assign(scratch_floats, 0.0f);
  try {
    for (int w = 1; w < n_threads; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
  } catch (...) {
    // A thread (or its bookkeeping) could not be made: stop and join the ones already running,
    // so a failed construction never leaves a joinable std::thread behind.
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t workers = std::min<int64_t>(size(), (n + grain - 1) / grain);
  if (workers <= 1) {
    fn(0, n, 0);
    return;
  }
  int64_t block = (n + workers - 1) / workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_block_ = block;
    pending_ = int(threads_.size());
    ++generation_;
  }
  cv_work_.notify_all();
  fn(0, std::min(n, block), 0);
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(int w) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t begin, end;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      begin = std::min(job_n_, job_block_ * w);
      end = std::min(job_n_, begin + job_block_);
    }
    if (begin < end) (*job)(begin, end, w);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

}  // namespace kiln

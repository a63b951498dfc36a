// Fixed-size pool: worker 0 is the calling thread, workers 1..n-1 are std::threads that wait
// for a generation counter to advance (spinning briefly, then on a condition variable). See
// kernels/thread_pool.h.
#include "kernels/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

namespace kiln {

namespace {

// How many fork()s this process is the child of (pthread_atfork's child handler counts them). The
// one piece of process-wide state here: a fork is an event of the process, not of a context, and
// pthread_atfork takes no argument to hang it on.
std::atomic<uint64_t> g_forks{0};

uint64_t forks_so_far() {
  static const int registered = pthread_atfork(nullptr, nullptr, [] { g_forks.fetch_add(1); });
  (void)registered;
  return g_forks.load(std::memory_order_relaxed);
}

// Keeps what a fork's child lets go of (~ThreadPool) reachable from here for good, so that leak
// checkers (LeakSanitizer at exit) do not report it.
void keep_forever(void* p) {
  static std::mutex mu;
  static std::vector<void*>* const kept = new std::vector<void*>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(p);
}

}  // namespace

bool ThreadPool::forked() const { return forks_so_far() != forks_; }

ThreadPool::ThreadPool(int n_threads, uint64_t scratch_floats) : forks_(forks_so_far()) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  scratch_.resize(size_t(n_threads));
  for (auto& s : scratch_) s.assign(scratch_floats, 0.0f);
  try {
    for (int w = 1; w < n_threads; ++w) threads_.emplace_back([this, w] { worker_loop(w); });
  } catch (...) {
    // A thread (or its bookkeeping) could not be made: stop and join the ones already running,
    // so a failed construction never leaves a joinable std::thread behind.
    {
      std::lock_guard<std::mutex> lock(sync_->mu);
      stop_ = true;
    }
    sync_->work.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (forked()) {
    // A fork's child: the workers live on in the parent only, so there is nothing to stop or join
    // (joining would wait forever), a joinable std::thread must not be destroyed, and destroying a
    // condition variable waits for its waiters: let go of them all.
    keep_forever(new std::vector<std::thread>(std::move(threads_)));
    keep_forever(sync_.release());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(sync_->mu);
    stop_ = true;
  }
  sync_->work.notify_all();
  for (auto& t : threads_) t.join();
}

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins until done() or kSpinNs have passed; whether done() held. Every 64 pauses it yields, so
// with more threads than cores (several contexts, a CPU quota) a spinning thread hands its core
// to one with work instead of burning the slice.
template <typename Done>
bool spin_until(Done done) {
  if (done()) return true;
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ThreadPool::kSpinNs);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return done();
    std::this_thread::yield();
  }
}

}  // namespace

void ThreadPool::parallel_for(int64_t n, int64_t grain, RangeFn fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t workers = std::min<int64_t>(size(), (n + grain - 1) / grain);
  if (workers <= 1) {
    fn(0, n, 0);
    return;
  }
  int64_t block = (n + workers - 1) / workers;
  if (forked()) {  // a fork's child has no workers (they stayed in the parent): the same blocks, in turn
    for (int w = 0; w < size(); ++w) {
      const int64_t begin = std::min(n, block * w), end = std::min(n, begin + block);
      if (begin < end) fn(begin, end, w);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(sync_->mu);
    job_ = &fn;
    job_n_ = n;
    job_block_ = block;
    pending_.store(int(threads_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  sync_->work.notify_all();  // no system call unless a worker sleeps
  fn(0, std::min(n, block), 0);
  if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(sync_->mu);
    sync_->done.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  job_ = nullptr;
}

void ThreadPool::parallel_items(int64_t n, RangeFn fn) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(size(), n), 1, [&](int64_t, int64_t, int worker) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i, i + 1, worker);
  });
}

void ThreadPool::worker_loop(int w) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lock(sync_->mu);
      sync_->work.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    const RangeFn* job = job_;
    const int64_t begin = std::min(job_n_, job_block_ * w);
    const int64_t end = std::min(job_n_, begin + job_block_);
    if (begin < end) (*job)(begin, end, w);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(sync_->mu);  // the caller checks under sync_->mu before it sleeps
      sync_->done.notify_one();
    }
  }
}

}  // namespace kiln

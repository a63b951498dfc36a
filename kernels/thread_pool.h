// A small fixed-size thread pool for the CPU kernels. Owned by a runtime Context (never
// global). In a fork()'s child it runs every block on the calling thread. parallel_for splits [0, n) into contiguous
// static blocks, one per worker, so a given element is always computed by the same code path in the same order: results
// are bit-identical for every thread count.
//
// Each worker also owns a scratch buffer of `scratch_floats` floats, sized by the context at
// creation from what the plan's launches need, so kernels never allocate during replay.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

namespace kiln {

// A non-owning reference to a callable fn(begin, end, worker): what parallel_for runs, without
// the heap allocation a std::function of a capturing lambda may make on every launch. Valid
// while the callable lives (parallel_for returns before its argument dies).
class RangeFn {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, RangeFn>>>
  RangeFn(F&& f)  // NOLINT: implicit, so callers pass lambdas as before
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, int64_t b, int64_t e, int w) { (*static_cast<std::remove_reference_t<F>*>(o))(b, e, w); }) {}
  void operator()(int64_t begin, int64_t end, int worker) const { call_(obj_, begin, end, worker); }

 private:
  void* obj_;
  void (*call_)(void*, int64_t, int64_t, int);
};

// An allocator of 64-byte-aligned (cache-line) blocks, so a buffer's first 512-bit vector (and every
// one at a multiple of 16 floats from it) lies within one cache line.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const CacheLineAllocator&) const { return true; }
  bool operator!=(const CacheLineAllocator&) const { return false; }
};

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
  // Workers spin briefly (kSpinNs) on the next job before they sleep, and the caller on their
  // completion: a model's launches follow each other within microseconds, and waking a
  // sleeping thread costs more than most decode launches take.
  void parallel_for(int64_t n, int64_t grain, RangeFn fn);

  // Calls fn(i, i + 1, worker) for each i in [0, n), each worker claiming the next unclaimed i from a
  // shared counter: for items of unequal cost (causal attention), which static blocks would leave one
  // worker waiting on the other. Which worker runs an item varies from run to run, so fn's result
  // for an item must not depend on it (per-worker scratch only): then results are the same bits.
  // Cheap items first would end unbalanced: order the costly ones first.
  void parallel_items(int64_t n, RangeFn fn);

  // Scratch of worker w (valid during parallel_for), at least scratch_floats() floats, 64-byte aligned
  // (unaligned 512-bit loads of widened weight rows split cache lines: about a third slower).
  float* scratch(int w) { return scratch_[size_t(w)].data(); }
  uint64_t scratch_floats() const { return scratch_.empty() ? 0 : scratch_[0].size(); }

  static constexpr int64_t kSpinNs = 100000;  // 0.1 ms

 private:
  void worker_loop(int w);
  // Whether this process is a fork's child of the one that made the pool: its workers are gone
  // (fork copies the calling thread only), so parallel_for runs every block on the caller, which
  // gives the same bits (each block as its worker would), and the destructor joins nothing.
  bool forked() const;

  std::vector<std::vector<float, CacheLineAllocator<float>>> scratch_;
  std::vector<std::thread> threads_;
  // (on the heap: a fork's child leaks them, as the parent's workers still count as their waiters)
  struct Sync {
    std::mutex mu;
    std::condition_variable work, done;
  };
  std::unique_ptr<Sync> sync_ = std::make_unique<Sync>();
  // The job: written under sync_->mu before generation_ advances (release), read by the workers after
  // they see it advance (acquire).
  const RangeFn* job_ = nullptr;
  int64_t job_n_ = 0, job_block_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers that have not finished the current job
  bool stop_ = false;            // under sync_->mu
  uint64_t forks_ = 0;           // fork()s this process was the child of when the pool was made
};

}  // namespace kiln

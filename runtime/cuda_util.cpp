#include "runtime/cuda_util.h"

#include <algorithm>
#include <cstring>

#include "runtime/cuda_check.h"

namespace kiln {

Status upload_staged(void* dst, const uint8_t* src, uint64_t n, cudaStream_t stream,
                     const std::function<void(uint64_t, uint64_t)>& progress) {
  constexpr uint64_t kStage = uint64_t(64) << 20;
  struct Staging {
    void* buf[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
    ~Staging() {
      for (int i = 0; i < 2; ++i) {
        if (done[i]) cudaEventSynchronize(done[i]), cudaEventDestroy(done[i]);
        cudaFreeHost(buf[i]);
      }
    }
  } st;
  for (int i = 0; i < 2; ++i) {
    KILN_CUDA_CHECK(cudaMallocHost(&st.buf[i], std::min(n, kStage)));
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&st.done[i], cudaEventDisableTiming));
  }
  uint64_t completed = 0;
  for (uint64_t off = 0, chunk = 0; off < n; off += kStage, ++chunk) {
    const int b = int(chunk % 2);
    const uint64_t len = std::min(kStage, n - off);
    if (chunk >= 2) {  // this buffer's previous chunk must have landed before it is refilled
      KILN_CUDA_CHECK(cudaEventSynchronize(st.done[b]));
      completed = off - kStage;
      if (progress) progress(completed, n);
    }
    std::memcpy(st.buf[b], src + off, len);
    KILN_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + off, st.buf[b], len, cudaMemcpyHostToDevice, stream));
    KILN_CUDA_CHECK(cudaEventRecord(st.done[b], stream));
  }
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (progress) progress(n, n);
  return Status::ok();
}

}  // namespace kiln

// CUDA device discovery (see device_info.cu).
#pragma once

namespace kiln {

int cuda_device_count();        // 0 when there is no usable device or driver
int cuda_device_sm(int device); // e.g. 90 for an H100/H200; 0 on error

}  // namespace kiln

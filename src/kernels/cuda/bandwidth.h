// The GPU's memory bandwidth as the decode floors use it: a device-to-device copy of 1 GiB
// (cudaMemcpyAsync), bytes read plus bytes written over the median time of 5 copies after one
// warm-up, in bytes per second. Allocates 2 GiB for the measurement and frees it.
#pragma once

namespace bx::cuda {

double copy_bandwidth();

}  // namespace bx::cuda

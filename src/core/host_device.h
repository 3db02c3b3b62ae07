// BX_HOST_DEVICE marks a function that host code and CUDA device code both call: one source for
// both, so the two cannot drift apart (kernels/exp_steps.h, sampling/philox.h,
// core/counter_hash.h). Compiled by a plain C++ compiler it is empty. BX_ALWAYS_INLINE asks
// both compilers to inline (on the host, into every clone of a BX_FMA_CLONES function, so its
// fma steps become instructions there).
#pragma once

#if defined(__CUDACC__)
#define BX_HOST_DEVICE __host__ __device__
#else
#define BX_HOST_DEVICE
#endif
#define BX_ALWAYS_INLINE __attribute__((always_inline))

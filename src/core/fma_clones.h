// BX_FMA_CLONES compiles a function twice, with the FMA instruction and without (std::fma then
// calls libm), and picks one when the program loads. Both give the same bits: fma is one
// correctly rounded operation either way; the clone only makes it fast on CPUs that have it.
// ThreadSanitizer cannot run the load-time resolver (an ifunc), so TSan builds get one version.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define BX_FMA_CLONES
#else
#define BX_FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif

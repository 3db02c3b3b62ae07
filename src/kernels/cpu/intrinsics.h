// <immintrin.h>, with GCC 12's false uninitialised-variable warnings from its own AVX-512
// headers silenced (the _mm512_undefined_* placeholders; GCC bug 105593, fixed in GCC 13).
// Diagnostics are judged where code is written, so they stay on for the file that includes this.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

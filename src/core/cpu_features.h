// The CPU instruction-set path used by the kernels, chosen once at run time.
//
// Every path gives the same bits (INVARIANCE.md R7): the scalar path is the canonical one and
// the SIMD paths reproduce its lane layout and reduction tree exactly. Forcing a path is how the
// tests check that promise: BITEXACT_ISA=scalar|avx2|avx512 in the environment, or set_isa().
#pragma once

#include <string_view>

namespace bx {

enum class Isa { scalar, avx2, avx512 };

std::string_view isa_name(Isa isa);

// The best path this CPU supports (avx512 needs AVX-512 F/BW/VL/DQ; avx2 needs AVX2+FMA+F16C).
Isa best_supported_isa();
bool isa_supported(Isa isa);

// The path kernels use now: BITEXACT_ISA if set (an unknown or unsupported value is an error),
// otherwise best_supported_isa().
Isa active_isa();

// Overrides the path for this process; throws bx::Error if the CPU lacks it.
void set_isa(Isa isa);

// Parses "scalar", "avx2" or "avx512"; throws bx::Error naming the accepted values otherwise.
Isa parse_isa(std::string_view name);

}  // namespace bx

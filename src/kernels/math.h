// exp and log for the kernels: one implementation shared by every ISA path (INVARIANCE.md R7).
//
// The C library's expf/logf may differ between library versions and machines; these do not:
// each is a fixed sequence of IEEE operations (range reduction, then a polynomial evaluated with
// explicit fma), so the same input gives the same bits everywhere. The steps are written out in
// math.cpp. Both are scalar, callable per element from any path.
//
// Accuracy: below 1 ulp (faithfully rounded) for every float input, subnormal inputs and results
// included: the largest error over all 2^32 inputs is 0.979 ulp for exp_f32 and 0.940 ulp for
// log_f32 (tests/unit/math_test.cpp sweeps a dense subset and pins the output bits).
#pragma once

namespace bx {

// e^x.  exp(+-0) = 1, exp(+inf) = +inf, exp(-inf) = +0, exp(nan) = nan; results beyond FLT_MAX
// are +inf, results below the least subnormal round to +0 (gradual underflow in between).
float exp_f32(float x);

// Natural log.  log(+-0) = -inf, log(x < 0) = nan (also -inf), log(+inf) = +inf,
// log(nan) = nan, log(1) = +0; subnormal inputs are first scaled by 2^23 (exactly).
float log_f32(float x);

}  // namespace bx

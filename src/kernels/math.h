// exp and log for the kernels: one implementation shared by every ISA path (INVARIANCE.md R7).
//
// The C library's expf/logf may differ between library versions and machines; these do not:
// each is a fixed sequence of IEEE operations (range reduction, then a polynomial evaluated with
// explicit fma), so the same input gives the same bits everywhere.
#pragma once

namespace bx {

// e^x. Accuracy bound and special values (inf, -inf -> 0, nan, overflow, underflow) are stated
// and tested in tests/unit/math_test.cpp.
float exp_f32(float x);

// Natural log. log(0) = -inf, log(x < 0) = nan, log(inf) = inf, subnormals handled.
float log_f32(float x);

}  // namespace bx

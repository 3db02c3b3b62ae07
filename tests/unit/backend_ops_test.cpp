// Backend conformance, CPU half: every Backend op on the CPU backend against a plain scalar
// reference in double precision (tests/support/backend_op_cases.h: each op at least once, every
// GEMM epilogue, parts and biases, RoPE layouts and q/k norms, paged attention, the logit rows).
//   T1 exact     GEMM cases on small integers and embedding rows: bound 0 (bit for bit)
//   T2 accurate  the rows kernels, swiglu, RoPE and attention: relative bounds per case
// Negative controls: a dropped bias, the other RoPE layout and a GEMM without its epilogue each
// exceed the bounds, so the comparison can fail. The CUDA half is tests/cuda/backend_ops_cuda_test.
#include <gtest/gtest.h>

#include <cstdio>

#include "backend/cpu_backend.h"
#include "support/backend_op_cases.h"

namespace bx {
namespace {

TEST(BackendOps, CpuMatchesTheScalarReference) {
  for (const test::BackendOpCase& c : test::backend_op_cases()) {
    for (int threads : {1, 3}) {
      CpuBackend cpu(threads);
      const double err = test::max_relative_error(c.run(cpu), c.reference());
      std::printf("%-60s threads %d: max rel err %.3g (bound %.3g)\n", c.name.c_str(), threads, err,
                  c.cpu_bound);
      EXPECT_LE(err, c.cpu_bound) << c.name << ", " << threads << " threads";
    }
  }
}

TEST(BackendOps, EveryCaseRunsAnOpWithOutputs) {
  const std::vector<test::BackendOpCase> cases = test::backend_op_cases();
  EXPECT_GE(cases.size(), 15u);
  for (const test::BackendOpCase& c : cases) {
    CpuBackend cpu(1);
    const test::HostOutputs out = c.run(cpu);
    ASSERT_FALSE(out.empty()) << c.name;
    double norm = 0;
    for (const auto& o : out) {
      for (double v : o) norm += v * v;
    }
    EXPECT_GT(norm, 0.0) << c.name << ": all outputs zero, the case checks nothing";
  }
}

// The comparison fails where the op is wrong: each pair computes something else than the other's
// reference, by an amount far above every bound.
TEST(BackendOps, NegativeControlsExceedTheBounds) {
  using test::ops::gemm_case;
  CpuBackend cpu(2);
  const auto with_bias = gemm_case("b", GemmEpilogue::store, {64, 32, 32}, true, 64);
  const auto without_bias = gemm_case("n", GemmEpilogue::store, {64, 32, 32}, false, 64);
  EXPECT_GT(test::max_relative_error(with_bias.run(cpu), without_bias.reference()), 1e-3);
  const auto accumulate = gemm_case("a", GemmEpilogue::accumulate, {64}, false, 64);
  const auto store = gemm_case("s", GemmEpilogue::store, {64}, false, 64);
  EXPECT_GT(test::max_relative_error(accumulate.run(cpu), store.reference()), 1e-3);
  const auto half = test::ops::rope_case(RopeLayout::half_split, false);
  const auto adjacent = test::ops::rope_case(RopeLayout::adjacent_pairs, false);
  EXPECT_GT(test::max_relative_error(half.run(cpu), adjacent.reference()), 1e-3);
  const auto normed = test::ops::rope_case(RopeLayout::half_split, true);
  EXPECT_GT(test::max_relative_error(normed.run(cpu), half.reference()), 1e-3);
}

// Malformed ops are refused with a message, not run.
TEST(BackendOps, BadGemmOpsAreErrors) {
  CpuBackend cpu(1);
  const std::vector<float> v(64 * 64, 1.0f);
  const Tensor x = cpu.upload_matrix(v.data(), 4, 64, DType::f32);
  const Tensor w = cpu.upload_matrix(v.data(), 32, 64, DType::f32);
  const Tensor y = cpu.alloc(DType::f32, 4, 32);
  const Tensor wrong_y = cpu.alloc(DType::f32, 4, 31);
  const Tensor bias = cpu.upload_matrix(v.data(), 1, 31, DType::f32);
  EXPECT_NO_THROW(cpu.gemm(GemmOp::projection(x, w, y)));
  EXPECT_THROW(cpu.gemm(GemmOp::projection(x, w, wrong_y)), Error);
  EXPECT_THROW(cpu.gemm(GemmOp::projection(x, w, y, bias)), Error);
  EXPECT_THROW(cpu.gemm(GemmOp::residual(x, w, y, Tensor{})), Error);  // no scratch
  GemmOp parts_accumulate = GemmOp::residual(x, w, y, cpu.alloc(DType::f32, 4, 32));
  parts_accumulate.n_parts = 2;
  parts_accumulate.w[1] = w;
  parts_accumulate.y[1] = y;
  EXPECT_THROW(cpu.gemm(parts_accumulate), Error);
}

}  // namespace
}  // namespace bx

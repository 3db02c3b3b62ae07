// CUDA: forward passes after reserve_kv_blocks allocate no device memory, graph-replayed decode
// steps and device sampling included (tests/support/step_state_cases.h); skips without a Hopper
// GPU.
#include "backend/cuda_backend.h"
#include "support/cuda_test_data.h"
#include "support/step_state_cases.h"

namespace bx {
namespace {

TEST(CudaStepState, ForwardAfterReserveAllocatesNothing) {
  BX_REQUIRE_HOPPER();
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 256;
  options.max_logit_rows = 64;
  options.make_backend = [] { return std::make_unique<CudaBackend>(); };
  LoadedModel m = load_model("random:qwen3-tiny:5", options);
  const int64_t replayed_before = m.model->replayed_steps();
  test::expect_forward_allocates_nothing(m);
  EXPECT_GT(m.model->replayed_steps(), replayed_before) << "no decode step ran as a graph";
}

// A bare backend (no reserve) reserves on demand: the count sees the batch's buffers.
TEST(CudaStepState, BatchBeyondTheReserveReservesMore) {
  BX_REQUIRE_HOPPER();
  CudaBackend backend;
  backend.init_kv_cache(KvCacheShape{1, 4, 16, 1, 8});
  const int64_t before = backend.allocation_count();
  const std::vector<int32_t> tokens = {1, 2, 3}, positions = {0, 1, 2}, rows = {2};
  const std::vector<int32_t> table = {0};
  const std::vector<const int32_t*> tables(3, table.data());
  backend.begin_batch(ForwardBatch{tokens, positions, tables, rows});
  const int64_t after_first = backend.allocation_count();
  EXPECT_GT(after_first, before);
  backend.begin_batch(ForwardBatch{tokens, positions, tables, rows});
  EXPECT_EQ(backend.allocation_count(), after_first) << "the same batch again allocated";
}

}  // namespace
}  // namespace bx

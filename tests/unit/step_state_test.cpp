// CPU: forward passes after reserve_kv_blocks allocate no backend memory
// (tests/support/step_state_cases.h).
#include "support/step_state_cases.h"

namespace bx {
namespace {

TEST(StepState, CpuForwardAfterReserveAllocatesNothing) {
  LoadOptions options;
  options.threads = 2;
  options.max_batch_tokens = 256;
  options.max_logit_rows = 64;
  LoadedModel m = load_model("random:qwen3-tiny:5", options);
  test::expect_forward_allocates_nothing(m);
}

}  // namespace
}  // namespace bx

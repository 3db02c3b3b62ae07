// The step-state contract (Backend::reserve_step_state): once LoadedModel::reserve_kv_blocks has
// sized the KV pool and the step state, forward passes of any shape within the model's limits
// allocate nothing. Shared by the CPU test (tests/unit/step_state_test.cpp) and the CUDA one
// (tests/cuda/step_state_cuda_test.cpp). Test code only.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "model/loader.h"

namespace bx::test {

// Requests of many shapes: prompts of 1 to 97 tokens (chunked prefill under a 96-token budget),
// greedy and sampled, top logprobs, two samples, a shared prefix (prefix cache hits), so the
// steps vary in tokens, sequences, logit rows and decode batch size.
inline std::vector<EngineRequest> varied_requests(int vocab) {
  std::vector<EngineRequest> out;
  for (int i = 0; i < 14; ++i) {
    EngineRequest r;
    const int length = 1 + (i * 37) % 97;
    for (int t = 0; t < length; ++t) r.prompt.push_back((t * 31 + (i % 4) * 17 + 1) % vocab);
    r.max_tokens = 3 + (i * 5) % 17;
    r.sampling.temperature = i % 3 == 1 ? 0.8f : 0.0f;
    r.sampling.seed = 7 + static_cast<uint64_t>(i);
    r.top_logprobs = i % 5 == 2 ? 3 : 0;
    r.n = i == 6 ? 2 : 1;
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

// Runs an engine over varied_requests and one hand-made batch after the step state is reserved
// and expects the backend's allocation count unchanged; then checks that the count does see an
// allocation (the negative control).
inline void expect_forward_allocates_nothing(LoadedModel& m) {
  EngineOptions options;
  options.max_batch_tokens = 96;
  options.sampler_threads = 2;
  Engine engine(m, options);  // reserves the KV pool and the step state
  const int64_t before = m.backend->allocation_count();

  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const EngineRequest& r : varied_requests(m.config.vocab_size)) {
    streams.push_back(engine.submit(r));
  }
  engine.run_until_idle();
  size_t tokens = 0;
  for (const auto& stream : streams) {
    while (const std::optional<EngineEvent> e = stream->next()) {
      if (e->kind == EngineEvent::Kind::token) ++tokens;
    }
  }
  EXPECT_GT(tokens, 100u) << "the engine generated too little to exercise the steps";
  EXPECT_GT(engine.stats().steps, 20u);

  // A batch made by hand: two sequences, a prefill of 5 tokens and one of 3, rows of both.
  const std::vector<int32_t> tokens_in = {5, 9, 2, 7, 1, 4, 4, 8};
  const std::vector<int32_t> positions = {0, 1, 2, 3, 4, 0, 1, 2};
  const std::vector<int32_t> table_a = {0, 1}, table_b = {2, 3};
  const std::vector<const int32_t*> tables = {table_a.data(), table_a.data(), table_a.data(),
                                              table_a.data(), table_a.data(), table_b.data(),
                                              table_b.data(), table_b.data()};
  const std::vector<int32_t> rows = {4, 7};
  std::vector<float> logits(rows.size() * static_cast<size_t>(m.config.vocab_size));
  m.model->forward(ForwardBatch{tokens_in, positions, tables, rows}, logits.data(), nullptr);
  EXPECT_EQ(m.backend->allocation_count(), before)
      << "a forward pass within the reserved step state allocated";

  // Negative control: the count sees an allocation.
  m.backend->alloc(DType::f32, 2, 8);
  EXPECT_EQ(m.backend->allocation_count(), before + 1);
}

}  // namespace bx::test

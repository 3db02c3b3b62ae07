// Drives the engine's LlamaModel::forward directly for one sequence, for tests that compare it
// with the float64 reference (tests/support/reference_llama.h). Test code only.
//
// One sequence owns KV blocks 0, 1, 2, ...: block b holds positions [b*block_size,
// (b+1)*block_size). Every token of a batch points at the same block table.
#pragma once

#include <cstdint>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/loader.h"

namespace bx::test {

// Logits and logprobs [rows][V] in f32, as the engine returned them.
struct EngineRows {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<float>> logprobs;
};

// Writes rows.logits as raw f32, row after row: the file the Python reference scripts compare.
inline void write_logits(const std::string& path, const EngineRows& rows) {
  std::ofstream out(path, std::ios::binary);
  for (const std::vector<float>& row : rows.logits) {
    out.write(reinterpret_cast<const char*>(row.data()),
              static_cast<std::streamsize>(row.size() * sizeof(float)));
  }
  check(static_cast<bool>(out), "write_logits: could not write " + path);
}

// "3,17,5": ids as the reference scripts take them on their command line.
inline std::string ids_csv(std::span<const int32_t> ids) {
  std::string out;
  for (int32_t id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  return out;
}

class SingleSequence {
 public:
  // Reserves KV blocks for a sequence of up to max_tokens tokens.
  SingleSequence(LoadedModel& m, int64_t max_tokens) : m_(m) {
    const int64_t block_size = m.kv_shape.block_size;
    const int64_t n_blocks = (max_tokens + block_size - 1) / block_size;
    m.reserve_kv_blocks(n_blocks);
    blocks_.resize(static_cast<size_t>(n_blocks));
    std::iota(blocks_.begin(), blocks_.end(), 0);
  }

  // Token t of `tokens` at position first_pos + t; returns logits and logprobs of every row in
  // `rows` (indices into tokens). The positions before first_pos must already be in the cache.
  EngineRows forward(std::span<const int32_t> tokens, int32_t first_pos,
                     std::span<const int32_t> rows) {
    const size_t T = tokens.size();
    const int32_t end = first_pos + static_cast<int32_t>(T);
    check(
        static_cast<int64_t>(end) <= static_cast<int64_t>(blocks_.size()) * m_.kv_shape.block_size,
        "engine driver: the sequence does not fit in the KV cache");
    std::vector<int32_t> positions(T);
    std::iota(positions.begin(), positions.end(), first_pos);
    const std::vector<const int32_t*> tables(T, blocks_.data());
    ForwardBatch batch;
    batch.tokens = tokens;
    batch.positions = positions;
    batch.block_tables = tables;
    batch.logit_rows = rows;
    const size_t V = static_cast<size_t>(m_.config.vocab_size);
    std::vector<float> logits(rows.size() * V), logprobs(rows.size() * V);
    m_.model->forward(batch, logits.data(), logprobs.data());
    EngineRows out;
    for (size_t r = 0; r < rows.size(); ++r) {
      out.logits.emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(r * V),
                              logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
      out.logprobs.emplace_back(logprobs.begin() + static_cast<std::ptrdiff_t>(r * V),
                                logprobs.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
    }
    return out;
  }

  // The whole prompt in one call from position 0, logits for every position.
  EngineRows forward_all(std::span<const int32_t> tokens) {
    std::vector<int32_t> rows(tokens.size());
    std::iota(rows.begin(), rows.end(), 0);
    return forward(tokens, 0, rows);
  }

 private:
  LoadedModel& m_;
  std::vector<int32_t> blocks_;  // the block table: block b of the sequence is pool block b
};

// Index of the largest logit; ties go to the lowest id.
inline int32_t argmax_lowest(std::span<const float> z) {
  size_t best = 0;
  for (size_t i = 1; i < z.size(); ++i) {
    if (z[i] > z[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

struct EngineGreedy {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;  // the engine's logprob of each chosen id
};

// Greedy decoding through the engine: the prompt prefilled in one call, then one token per call.
inline EngineGreedy engine_greedy(LoadedModel& m, std::span<const int32_t> prompt, int n_new) {
  SingleSequence seq(m, static_cast<int64_t>(prompt.size()) + n_new);
  EngineGreedy out;
  const int32_t last = static_cast<int32_t>(prompt.size()) - 1;
  EngineRows rows = seq.forward(prompt, 0, std::span<const int32_t>(&last, 1));
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < n_new; ++i) {
    const int32_t id = argmax_lowest(rows.logits[0]);
    out.ids.push_back(id);
    out.logprobs.push_back(rows.logprobs[0][static_cast<size_t>(id)]);
    if (i + 1 == n_new) break;
    const int32_t row0 = 0;
    rows = seq.forward(std::span<const int32_t>(&id, 1), pos, std::span<const int32_t>(&row0, 1));
    ++pos;
  }
  return out;
}

}  // namespace bx::test

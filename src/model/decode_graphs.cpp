#include "model/decode_graphs.h"

#include <algorithm>

namespace bx {

int DecodeGraphs::bucket(int rows) {
  for (int b : {1, 2, 4, 8, 16, 24, 32, 48, 64}) {
    if (rows <= b) return b;
  }
  return (rows + 31) / 32 * 32;
}

bool DecodeGraphs::is_bucket_step(const ForwardBatch& batch) {
  const size_t T = batch.tokens.size();
  if (T == 0 || T > static_cast<size_t>(kMaxReplayRows) || batch.logit_rows.size() != T ||
      bucket(static_cast<int>(T)) != static_cast<int>(T)) {
    return false;
  }
  for (size_t r = 0; r < T; ++r) {
    if (batch.logit_rows[r] != static_cast<int32_t>(r)) return false;
  }
  return true;
}

void DecodeGraphs::run(int bucket, const std::function<void()>& issue) {
  const auto key = static_cast<uint64_t>(bucket);
  if (capture_->replay(key)) {
    ++replayed_steps_;
    return;
  }
  const bool seen =
      std::find(seen_buckets_.begin(), seen_buckets_.end(), bucket) != seen_buckets_.end();
  bool ran = false;
  if (seen) {
    capture_->begin_recording(key);
    try {
      issue();
    } catch (...) {
      capture_->end_recording(key, false);
      throw;
    }
    ran = capture_->end_recording(key, true);
    if (ran) ++replayed_steps_;
  }
  if (!ran) issue();
  if (!seen) seen_buckets_.push_back(bucket);
}

}  // namespace bx

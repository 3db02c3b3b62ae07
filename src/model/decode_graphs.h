// Decode steps as recordings (BackendCapabilities::graph_capture; CUDA graphs).
//
// A decode step is a batch in which every token is a logit row, in order. One of B tokens runs
// as the recording of its bucket (bucket(B): 1, 2, 4, 8, 16, 24, 32, 48, 64, then multiples of
// 32, up to kMaxReplayRows): the engine's ModelRunner pads the step to the bucket with filler
// tokens (ForwardBatch::fillers: id 0 at position 0, their K and V written to the scratch block,
// which no sequence owns). A bucket's recording is made the second time it is seen (the first
// runs directly, so lazy set-up happens outside a recording) and replayed after. Every op
// computes a row from its own inputs in an order fixed by the shapes (R1-R5), so the real rows
// get the same bits with or without filler rows and recording; tests/cuda/serving_test.cpp
// checks it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backend/backend.h"

namespace bx {

class DecodeGraphs {
 public:
  static constexpr int kMaxReplayRows = 256;
  // The smallest bucket >= rows.
  static int bucket(int rows);
  // Whether `batch` is a decode step of exactly a bucket's tokens (padded or not).
  static bool is_bucket_step(const ForwardBatch& batch);

  explicit DecodeGraphs(GraphCapture* capture) : capture_(capture) {}

  // Recording on (default) or off: off, every step's ops run directly.
  void set_enabled(bool enabled) { enabled_ = enabled; }
  // Whether steps can run as recordings now (a capture interface, and enabled).
  bool active() const { return capture_ != nullptr && enabled_; }
  // Runs the ops that `issue` enqueues (after begin_batch of a bucket step) as the recording of
  // `bucket`: replayed when one is valid, else recorded (from the bucket's second step) or run
  // directly.
  void run(int bucket, const std::function<void()>& issue);
  // Steps whose ops ran as a recording (made then, or replayed).
  int64_t replayed_steps() const { return replayed_steps_; }

 private:
  GraphCapture* capture_;
  bool enabled_ = true;
  std::vector<int> seen_buckets_;  // buckets run once directly
  int64_t replayed_steps_ = 0;
};

}  // namespace bx

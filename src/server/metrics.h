// Prometheus text metrics (exposition format 0.0.4) for GET /metrics.
//
// Counters and histograms are recorded by the HTTP threads (requests, tokens, time to first
// token) and by the engine's step observer (step time); gauges are read from the engine when the
// page is rendered (queue depth, running sequences, KV blocks, prefix-cache hit rate).
// Every method is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace bx {
class Engine;
}

namespace bx::server {

// A histogram with fixed upper bounds (seconds), cumulative buckets as Prometheus wants them.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Lines for metric `name` (with _bucket, _sum, _count).
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // [bounds + 1], the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void count_tokens(uint64_t prompt_tokens, uint64_t generated_tokens);
  void observe_step(double seconds) { step_seconds_.observe(seconds); }
  void observe_time_to_first_token(double seconds) { ttft_seconds_.observe(seconds); }
  void observe_request_latency(double seconds) { request_seconds_.observe(seconds); }

  // The whole page; engine may be null (still loading).
  std::string render(const Engine* engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0;
  uint64_t generated_tokens_ = 0;
  Histogram step_seconds_;
  Histogram ttft_seconds_;
  Histogram request_seconds_;
};

}  // namespace bx::server

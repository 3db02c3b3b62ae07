#include "server/metrics.h"

#include <cstdio>

#include "engine/engine.h"

namespace bx::server {
namespace {

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

std::string header(const std::string& name, const std::string& help, const char* type) {
  return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string scalar(const std::string& name, const std::string& help, const char* type,
                   double value) {
  return header(name, help, type) + name + " " + number(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard lock(mutex_);
  counts_[i] += 1;
  sum_ += value;
  count_ += 1;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  std::string out = header(name, help, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum " + number(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
  return out;
}

Metrics::Metrics()
    : step_seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      ttft_seconds_({0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      request_seconds_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  requests_[{route, status}] += 1;
}

void Metrics::count_tokens(uint64_t prompt_tokens, uint64_t generated_tokens) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += prompt_tokens;
  generated_tokens_ += generated_tokens;
}

std::string Metrics::render(const Engine* engine) const {
  std::string out;
  {
    std::lock_guard lock(mutex_);
    out += header("bitexact_requests_total", "HTTP requests by route and status code", "counter");
    for (const auto& [key, count] : requests_) {
      out += "bitexact_requests_total{route=\"" + key.first + "\",code=\"" +
             std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
    }
    out += scalar("bitexact_prompt_tokens_total", "Prompt tokens of finished requests", "counter",
                  static_cast<double>(prompt_tokens_));
    out += scalar("bitexact_generation_tokens_total", "Generated tokens of finished requests",
                  "counter", static_cast<double>(generated_tokens_));
  }
  if (engine != nullptr) {
    const PoolGauges g = engine->pool_gauges();
    out += scalar("bitexact_queue_depth", "Sequences waiting to run", "gauge",
                  static_cast<double>(engine->waiting_count()));
    out += scalar("bitexact_running_sequences", "Sequences running", "gauge",
                  static_cast<double>(engine->running_count()));
    out += scalar("bitexact_kv_blocks_in_use", "KV cache blocks held by sequences", "gauge",
                  static_cast<double>(g.held_blocks));
    out += scalar("bitexact_kv_blocks_total", "KV cache blocks in the pool", "gauge",
                  static_cast<double>(g.total_blocks));
    out += scalar("bitexact_kv_blocks_cached", "KV cache blocks published for prefix reuse",
                  "gauge", static_cast<double>(g.cached_blocks));
    out += scalar("bitexact_prefix_cache_lookups_total", "Prefix-cache block lookups", "counter",
                  static_cast<double>(g.prefix_lookups));
    out += scalar("bitexact_prefix_cache_hits_total", "Prefix-cache block lookups that hit",
                  "counter", static_cast<double>(g.prefix_hits));
    const EngineStats st = engine->stats();
    out += scalar("bitexact_engine_steps_total", "Engine steps that ran a batch", "counter",
                  static_cast<double>(st.steps));
    out += scalar("bitexact_engine_forward_seconds_total",
                  "Time in the forward pass (the device's share of the steps)", "counter",
                  st.forward_seconds);
    out += scalar("bitexact_engine_host_seconds_total",
                  "Time of the steps outside the forward pass: scheduling, sampling, output "
                  "processing (detokenization, stop strings, events)",
                  "counter", st.schedule_seconds);
    out += scalar("bitexact_engine_batch_tokens_total", "Tokens through the forward pass",
                  "counter", static_cast<double>(st.batch_tokens));
    out += scalar("bitexact_prefix_cache_hit_rate", "Hits / lookups since start (0 before any)",
                  "gauge",
                  g.prefix_lookups
                      ? static_cast<double>(g.prefix_hits) / static_cast<double>(g.prefix_lookups)
                      : 0.0);
  }
  out += step_seconds_.render("bitexact_step_seconds", "Wall time of engine steps that ran");
  out += ttft_seconds_.render("bitexact_time_to_first_token_seconds",
                              "From a request's arrival to its first generated token");
  out += request_seconds_.render("bitexact_request_seconds",
                                 "From a generation request's arrival to its last token");
  return out;
}

}  // namespace bx::server

// Serving on one GPU: decode against the weight-bandwidth roofline, decode throughput by batch,
// a per-op breakdown, and an end-to-end run of many requests through the engine, in invariant
// and fast mode side by side (same process, same model spec, one mode after the other).
//
//   serve_bench [--model random:qwen3-8b] [--modes invariant,fast] [--batches 1,8,32,64,128,256]
//               [--context 128] [--iters 20] [--requests 1000] [--max-tokens 100]
//               [--prompt-tokens 16] [--max-seqs 256] [--max-batch-tokens 4096]
//               [--sampled-requests 0] [--unfused 1] [--host-sampling]
//
// 1. Copy bandwidth: device-to-device cudaMemcpy of 1 GiB, bytes read plus written (timing.h).
//    Roofline of one decode token = bytes of all matmul weights as held / copy bandwidth
//    (the embedding is read one row per token and is left out).
// 2. Decode step: B sequences, one new token each at position --context (the attention reads
//    that many cached positions), through LlamaModel::forward with the greedy choice on the
//    device; wall time per step over --iters steps after 3 warm-up steps, launched op by op
//    (eager) and as a CUDA graph (replay, llama.h). ms/token at B = 1, tokens/s = B / step.
//    In invariant mode with --unfused 1, each is measured with the fused ops (q|k|v as one GEMM,
//    the SwiGLU and residual-add epilogues: CudaBackend::set_fused) and without (the same bits).
// 3. Per-op GPU time (CUDA events around each op, OpTimingBackend) of one such step at the
//    smallest and the largest B (fused and, with --unfused 1, unfused).
// 4. Engine: --requests greedy requests with distinct prompts of --prompt-tokens ids and
//    --max-tokens generated ids each (EOS ignored), all submitted at once; wall time from the
//    first step to the last, generated tokens/s, steps, forward and scheduler time (graphs on).
//    --sampled-requests: the same at temperature 1 (seeded sampling on the device,
//    Backend::sample_rows; with --host-sampling on the host: each row's logits and logprobs
//    come to the host whole).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/loader.h"
#include "op_timing_backend.h"
#include "timing.h"

namespace {

using bx::cuda::check_cuda;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One decode step of B sequences at position `context` (block tables of their own blocks).
struct DecodeBatch {
  std::vector<int32_t> tokens, positions, rows, blocks;
  std::vector<const int32_t*> tables;
  std::vector<int32_t> ids;
  std::vector<float> chosen;
  DecodeBatch(int B, int context, int block_size, int vocab) {
    const int per_seq = context / block_size + 1;
    blocks.resize(static_cast<size_t>(B * per_seq));
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
    for (int b = 0; b < B; ++b) {
      tokens.push_back((b * 7919 + 13) % vocab);
      positions.push_back(context);
      rows.push_back(b);
      tables.push_back(blocks.data() + static_cast<size_t>(b) * per_seq);
    }
    ids.resize(static_cast<size_t>(B));
    chosen.resize(static_cast<size_t>(B));
  }
  void run(bx::LlamaModel& model) {
    bx::LogitOutputs out;
    std::vector<uint8_t> none(rows.size(), 0);
    out.full = none;
    out.greedy_ids = ids.data();
    out.greedy_logprobs = chosen.data();
    model.forward(bx::ForwardBatch{tokens, positions, tables, rows}, out);
  }
};

struct EngineRun {
  double wall = 0, forward = 0, schedule = 0;
  uint64_t steps = 0, tokens = 0;
  int64_t kv_tokens = 0;  // the pool the engine sized (kv_sizing.h)
};

EngineRun run_engine(bx::LoadedModel& model, int requests, int max_tokens, int prompt_tokens,
                     int max_seqs, float temperature, bool host_sampling) {
  bx::EngineOptions options;
  options.max_seqs = max_seqs;
  options.device_sampling = !host_sampling;
  options.prefix_cache = false;
  bx::Engine engine(model, options);
  const int vocab = model.config.vocab_size;
  std::vector<std::shared_ptr<bx::RequestStream>> streams;
  for (int i = 0; i < requests; ++i) {
    bx::EngineRequest r;
    for (int t = 0; t < prompt_tokens; ++t) {
      r.prompt.push_back(static_cast<int32_t>((int64_t{t} * 131 + int64_t{i} * 977 + 1) % vocab));
    }
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = temperature;
    r.sampling.seed = static_cast<uint64_t>(i);
    streams.push_back(engine.submit(r));
  }
  const Clock::time_point start = Clock::now();
  engine.run_until_idle();
  EngineRun run;
  run.wall = seconds_since(start);
  const bx::EngineStats s = engine.stats();
  run.steps = s.steps;
  run.kv_tokens = engine.options().kv_cache_tokens;
  run.forward = s.forward_seconds;
  run.schedule = s.schedule_seconds;
  for (auto& stream : streams) {
    while (std::optional<bx::EngineEvent> e = stream->try_next()) {
      if (e->kind == bx::EngineEvent::Kind::token) ++run.tokens;
    }
  }
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPU serving benchmark"};
  std::string model_path = "random:qwen3-8b";
  std::vector<std::string> modes = {"invariant", "fast"};
  std::vector<int> batches = {1, 8, 32, 64, 128, 256};
  int context = 128, iters = 20, requests = 1000, max_tokens = 100, prompt_tokens = 16;
  int max_seqs = 256, max_batch_tokens = 4096, sampled_requests = 0, unfused = 1;
  bool host_sampling = false;
  app.add_option("--model", model_path, "model path or random:NAME[:SEED]");
  app.add_option("--modes", modes, "invariant,fast")->delimiter(',');
  app.add_option("--batches", batches, "decode batch sizes")->delimiter(',');
  app.add_option("--context", context, "cached positions each decode token attends to");
  app.add_option("--iters", iters, "timed decode steps per batch size");
  app.add_option("--requests", requests, "engine run: requests (0 skips it)");
  app.add_option("--sampled-requests", sampled_requests,
                 "engine run at temperature 1 (0 skips it)");
  app.add_flag("--host-sampling", host_sampling,
               "engine run: sampled rows to the host Sampler instead of the device");
  app.add_option("--max-tokens", max_tokens, "engine run: generated tokens per request");
  app.add_option("--prompt-tokens", prompt_tokens, "engine run: prompt tokens per request");
  app.add_option("--max-seqs", max_seqs, "engine run: sequences per step");
  app.add_option("--max-batch-tokens", max_batch_tokens, "engine run: tokens per step");
  app.add_option("--unfused", unfused, "invariant mode: also measure with the fused ops off (0/1)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a log even if the run is cut off
  if (!bx::bench::report_device("serve_bench")) return 0;
  try {
    const double bandwidth = bx::bench::copy_bandwidth();
    std::printf("copy bandwidth: %.3f TB/s (1 GiB device-to-device, read + write)\n",
                bandwidth / 1e12);
    std::vector<std::string> summary;
    for (const std::string& mode : modes) {
      bx::bench::OpTimingBackend* timing = nullptr;
      bx::LoadOptions options;
      options.max_batch_tokens =
          std::max(max_batch_tokens, *std::max_element(batches.begin(), batches.end()));
      options.max_logit_rows =
          std::max(max_seqs, *std::max_element(batches.begin(), batches.end()));
      const auto cuda_mode =
          mode == "fast" ? bx::CudaBackend::Mode::fast : bx::CudaBackend::Mode::invariant;
      options.make_backend = [&timing, cuda_mode] {
        auto b = std::make_unique<bx::bench::OpTimingBackend>(cuda_mode);
        timing = b.get();
        return b;
      };
      const Clock::time_point load_start = Clock::now();
      bx::LoadedModel model = bx::load_model(model_path, options);
      const double load_s = seconds_since(load_start);
      const double weight_bytes = static_cast<double>(model.matmul_weight_bytes);
      const double floor_ms = weight_bytes / bandwidth * 1e3;
      std::printf("\n== %s (%s, %s): load %.2f s, matmul weights %.3f GB, decode floor %.3f ms\n",
                  mode.c_str(), model.backend->name().c_str(), model.system_fingerprint().c_str(),
                  load_s, weight_bytes / 1e9, floor_ms);
      // The KV cache for the decode steps: every batch's blocks.
      const int block_size = model.kv_shape.block_size;
      const int max_b = *std::max_element(batches.begin(), batches.end());
      model.reserve_kv_blocks(int64_t{max_b} * (context / block_size + 1));
      std::printf(
          "| mode | B | ops | launch | ms/step | tokens/s | floor ms | floor / step |\n"
          "|---|---|---|---|---|---|---|---|\n");
      std::vector<bool> fusions = {true};
      if (unfused != 0 && cuda_mode == bx::CudaBackend::Mode::invariant) fusions.push_back(false);
      for (int B : batches) {
        DecodeBatch batch(B, context, block_size, model.config.vocab_size);
        for (const bool fused : fusions) {
          timing->set_fused(fused);
          const char* ops = fused ? "fused" : "unfused";
          for (const bool graphs : {false, true}) {
            model.model->set_replay(graphs);
            for (int i = 0; i < 3; ++i) batch.run(*model.model);  // direct, recorded, replayed
            const Clock::time_point start = Clock::now();
            for (int i = 0; i < iters; ++i) batch.run(*model.model);
            const double step_ms = seconds_since(start) * 1e3 / iters;
            std::printf("| %s | %d | %s | %s | %.3f | %.0f | %.3f | %.3f |\n", mode.c_str(), B, ops,
                        graphs ? "graph" : "eager", step_ms, B / step_ms * 1e3, floor_ms,
                        floor_ms / step_ms);
            if (B == 1 || B == max_b) {
              char line[256];
              std::snprintf(line, sizeof line,
                            "| %s | decode B=%d, %s, %s | %.3f ms/step | floor %.3f ms | %.1f%% of "
                            "roofline |",
                            mode.c_str(), B, ops, graphs ? "graph" : "eager", step_ms, floor_ms,
                            100.0 * floor_ms / step_ms);
              summary.push_back(line);
            }
          }
        }
      }
      timing->set_fused(true);
      model.model->set_replay(false);  // the op timer sees only directly issued ops
      std::vector<int> profiled = {batches.front()};
      if (batches.back() != batches.front()) profiled.push_back(batches.back());
      for (int B : profiled) {
        for (const bool fused : fusions) {
          timing->set_fused(fused);
          DecodeBatch batch(B, context, block_size, model.config.vocab_size);
          batch.run(*model.model);  // warm-up
          timing->enable();
          const int reps = 3;
          for (int i = 0; i < reps; ++i) batch.run(*model.model);
          const auto totals = timing->collect();
          double all = 0;
          for (const auto& [key, v] : totals) all += v.first;
          std::vector<std::pair<double, std::string>> sorted;
          for (const auto& [key, v] : totals) sorted.emplace_back(v.first, key);
          std::sort(sorted.rbegin(), sorted.rend());
          std::printf(
              "\nper-op GPU time, %s, %s, B=%d (per step; sum %.3f ms)\n| op | ms | calls | share "
              "|\n|---|---|---|---|\n",
              mode.c_str(), fused ? "fused" : "unfused", B, all / reps);
          for (const auto& [ms, key] : sorted) {
            std::printf("| %s | %.3f | %d | %.1f%% |\n", key.c_str(), ms / reps,
                        totals.at(key).second / reps, 100.0 * ms / all);
          }
        }
      }
      timing->set_fused(true);
      model.model->set_replay(true);
      for (const float temperature : {0.0f, 1.0f}) {
        const int n = temperature == 0.0f ? requests : sampled_requests;
        if (n == 0) continue;
        const EngineRun run =
            run_engine(model, n, max_tokens, prompt_tokens, max_seqs, temperature, host_sampling);
        std::printf(
            "\nengine: %d requests x %d tokens (prompt %d, max-seqs %d, temperature %.0f): %.2f s, "
            "%.0f tokens/s, %llu steps, forward %.2f s, scheduler %.2f s, KV pool %lld tokens\n",
            n, max_tokens, prompt_tokens, max_seqs, temperature, run.wall,
            static_cast<double>(run.tokens) / run.wall, static_cast<unsigned long long>(run.steps),
            run.forward, run.schedule, static_cast<long long>(run.kv_tokens));
        char line[256];
        std::snprintf(line, sizeof line,
                      "| %s | engine %d x %d, temperature %.0f | %.2f s | %.0f tokens/s | %llu "
                      "steps, scheduler + sampling %.2f s |",
                      mode.c_str(), n, max_tokens, temperature, run.wall,
                      static_cast<double>(run.tokens) / run.wall,
                      static_cast<unsigned long long>(run.steps), run.schedule);
        summary.push_back(line);
      }
    }
    std::printf("\n| mode | what | result | | |\n|---|---|---|---|---|\n");
    for (const std::string& line : summary) std::printf("%s\n", line.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Seeded sampling on the GPU (Backend::sample_rows, kernels/cuda/sample.h) against the path it
// replaces: each row's logits and logprobs copied to the host and the host Sampler run there.
//
//   sample_bench [--vocab 151936] [--batches 1,256] [--iters 20]
//
// Rows of V floats (Qwen3's vocabulary by default), two kinds: "flat" (logits ~ N(0, 1), like a
// model with random weights: the draw walks about u * V ids of the sorted order) and "peaked"
// (N(0, 2.5) plus eight ids at 14..28, like a trained model: the walks end within a few ids).
// Parameter sets: plain temperature 1; T 0.7 with top_p 0.95; T 0.7 with top_k 50.
// Columns: GPU wall time of one sample_rows call (parameters up, kernel, ids and logprobs down,
// synchronised; median of --iters), per row; the host path per row: copy_to_host of the two
// rows, and the Sampler on one thread (median over up to 32 rows); and the number of rows whose
// GPU id differs from the host Sampler's (must be 0).
#include <cuda_runtime_api.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPU sampling against the host Sampler"};
  int64_t vocab = 151936;
  std::string batches_arg = "1,256";
  int iters = 20;
  app.add_option("--vocab", vocab, "row length V");
  app.add_option("--batches", batches_arg, "rows per call, comma-separated");
  app.add_option("--iters", iters, "timed GPU calls per configuration");
  CLI11_PARSE(app, argc, argv);
  const std::vector<int> batches = parse_list(batches_arg);
  const int max_rows = *std::max_element(batches.begin(), batches.end());

  bx::CudaBackend backend;
  struct Params {
    const char* name;
    bx::SamplingParams p;
  };
  std::vector<Params> param_sets(3);
  param_sets[0] = {"T=1", {}};
  param_sets[1] = {"T=0.7 top_p=0.95", {}};
  param_sets[1].p.temperature = 0.7f, param_sets[1].p.top_p = 0.95f;
  param_sets[2] = {"T=0.7 top_k=50", {}};
  param_sets[2].p.temperature = 0.7f, param_sets[2].p.top_k = 50;

  std::printf("# sample_bench: V = %lld, %d timed calls per configuration\n",
              static_cast<long long>(vocab), iters);
  std::printf(
      "| rows | logits | params | GPU us/call | GPU us/row | host copy us/row | "
      "host Sampler us/row | GPU != host |\n|---|---|---|---|---|---|---|---|\n");
  for (const char* kind : {"flat", "peaked"}) {
    // max_rows rows, each with its own random logits.
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    const bool peaked = std::string(kind) == "peaked";
    std::vector<float> host_logits(static_cast<size_t>(max_rows * vocab));
    for (float& x : host_logits) x = (peaked ? 2.5f : 1.0f) * normal(rng);
    if (peaked) {
      for (int r = 0; r < max_rows; ++r) {
        for (int k = 0; k < 8; ++k) {
          host_logits[static_cast<size_t>(r * vocab + pick(rng))] =
              14.0f + 2.0f * static_cast<float>(k);
        }
      }
    }
    const bx::Tensor logits = backend.alloc(bx::DType::f32, max_rows, vocab);
    bx::cuda::check_cuda(
        cudaMemcpy2D(logits.data, static_cast<size_t>(logits.stride) * sizeof(float),
                     host_logits.data(), static_cast<size_t>(vocab) * sizeof(float),
                     static_cast<size_t>(vocab) * sizeof(float), static_cast<size_t>(max_rows),
                     cudaMemcpyHostToDevice),
        "upload logits");
    const bx::Tensor logprobs = backend.alloc(bx::DType::f32, max_rows, vocab);
    backend.log_softmax(logits, logprobs);
    std::vector<float> host_logprobs(host_logits.size());
    backend.copy_to_host(logprobs, host_logprobs.data());

    for (const Params& ps : param_sets) {
      for (int rows : batches) {
        std::vector<bx::SamplingParams> params(static_cast<size_t>(rows), ps.p);
        std::vector<uint64_t> indices(static_cast<size_t>(rows));
        for (int r = 0; r < rows; ++r) {
          params[static_cast<size_t>(r)].seed = 1000 + static_cast<uint64_t>(r);
          indices[static_cast<size_t>(r)] = 17 + static_cast<uint64_t>(r);
        }
        std::vector<int32_t> ids(static_cast<size_t>(rows));
        std::vector<float> chosen(static_cast<size_t>(rows));
        const bx::Tensor l = logits.rows_view(0, rows), lp = logprobs.rows_view(0, rows);
        backend.sample_rows(l, lp, params, indices, ids.data(), chosen.data());  // warm-up
        std::vector<double> gpu_us;
        for (int it = 0; it < iters; ++it) {
          const Clock::time_point t = Clock::now();
          backend.sample_rows(l, lp, params, indices, ids.data(), chosen.data());
          gpu_us.push_back(us_since(t));
        }
        // The host path on up to 32 rows: copy both rows, run the Sampler.
        bx::Sampler sampler;
        std::vector<float> row_logits(static_cast<size_t>(vocab)), row_logprobs(row_logits.size());
        std::vector<double> copy_us, host_us;
        int mismatches = 0;
        for (int r = 0; r < rows; ++r) {
          const auto at = static_cast<size_t>(r) * static_cast<size_t>(vocab);
          if (r < 32) {
            Clock::time_point t = Clock::now();
            backend.copy_to_host(logits.rows_view(r, 1), row_logits.data());
            backend.copy_to_host(logprobs.rows_view(r, 1), row_logprobs.data());
            copy_us.push_back(us_since(t));
            t = Clock::now();
            const bx::Sampler::Choice c =
                sampler.sample(row_logits, row_logprobs, params[static_cast<size_t>(r)],
                               indices[static_cast<size_t>(r)]);
            host_us.push_back(us_since(t));
            if (c.id != ids[static_cast<size_t>(r)]) ++mismatches;
          } else {
            const bx::Sampler::Choice c = sampler.sample(
                std::span<const float>(host_logits.data() + at, static_cast<size_t>(vocab)),
                std::span<const float>(host_logprobs.data() + at, static_cast<size_t>(vocab)),
                params[static_cast<size_t>(r)], indices[static_cast<size_t>(r)]);
            if (c.id != ids[static_cast<size_t>(r)]) ++mismatches;
          }
        }
        const double call = median(gpu_us);
        std::printf("| %d | %s | %s | %.1f | %.2f | %.1f | %.1f | %d |\n", rows, kind, ps.name,
                    call, call / rows, median(copy_us), median(host_us), mismatches);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

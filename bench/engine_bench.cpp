// Engine throughput against the sequence cap, and the scheduler's own cost per step.
//
//   build/engine_bench --model PATH [--threads N] [--seqs 1,4,16,64] [--max-tokens 64]
//                      [--prompt-tokens 32] [--repeats 3]
//
// For each cap S it submits S requests (distinct prompts of --prompt-tokens tokens, greedy,
// --max-tokens each, EOS ignored) to a fresh engine with max-seqs S and runs them to the end.
// Reported: generated tokens/s over the whole run (prefill included), the mean time per step in
// forward and in the scheduler (step() minus forward: queues, block tables, prefix hashing,
// sampling, stop checks), and the scheduler's share of a decode step. Medians over --repeats.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/loader.h"

namespace {

struct Run {
  double wall = 0, tokens_per_s = 0, forward_ms_per_step = 0, schedule_ms_per_step = 0;
  uint64_t steps = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Run run_once(bx::LoadedModel& model, int seqs, int max_tokens, int prompt_tokens) {
  bx::EngineOptions options;
  options.max_seqs = seqs;
  options.prefix_cache = false;  // distinct prompts anyway; measure plain batching
  bx::Engine engine(model, options);
  const int32_t vocab = model.config.vocab_size;
  const int32_t bos = model.tokenizer ? model.tokenizer->bos_id() : 1;
  std::vector<std::shared_ptr<bx::RequestStream>> streams;
  for (int i = 0; i < seqs; ++i) {
    bx::EngineRequest r;
    r.prompt.push_back(bos);
    for (int t = 1; t < prompt_tokens; ++t) {
      r.prompt.push_back(3 + (t * 131 + i * 977) % (vocab - 3));
    }
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    streams.push_back(engine.submit(r));
  }
  const auto start = std::chrono::steady_clock::now();
  engine.run_until_idle();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bx::EngineStats s = engine.stats();
  Run run;
  run.wall = wall;
  run.tokens_per_s = static_cast<double>(seqs) * max_tokens / wall;
  run.steps = s.steps;
  run.forward_ms_per_step = 1e3 * s.forward_seconds / static_cast<double>(s.steps);
  run.schedule_ms_per_step = 1e3 * s.schedule_seconds / static_cast<double>(s.steps);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Engine throughput against max-seqs"};
  std::string model_path;
  int threads = 2, max_tokens = 64, prompt_tokens = 32, repeats = 3;
  std::vector<int> seqs_list = {1, 4, 16, 64};
  app.add_option("--model", model_path, "GGUF model")->required();
  app.add_option("--threads", threads, "CPU threads (2)");
  app.add_option("--seqs", seqs_list, "max-seqs values (1,4,16,64)")->delimiter(',');
  app.add_option("--max-tokens", max_tokens, "generated tokens per request (64)");
  app.add_option("--prompt-tokens", prompt_tokens, "prompt tokens per request (32)");
  app.add_option("--repeats", repeats, "runs per point; medians reported (3)");
  CLI11_PARSE(app, argc, argv);
  try {
    bx::LoadOptions load;
    load.threads = threads;
    load.max_logit_rows = *std::max_element(seqs_list.begin(), seqs_list.end());
    load.max_batch_tokens = 512;
    bx::LoadedModel model = bx::load_model(model_path, load);
    std::printf("model %s, threads %d, %d prompt + %d generated tokens per request, medians of %d\n",
                model_path.c_str(), threads, prompt_tokens, max_tokens, repeats);
    std::printf("| max-seqs | tokens/s | steps | forward ms/step | scheduler ms/step | scheduler / forward |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|\n");
    for (int seqs : seqs_list) {
      std::vector<double> tps, fwd, sched;
      uint64_t steps = 0;
      for (int r = 0; r < repeats; ++r) {
        const Run run = run_once(model, seqs, max_tokens, prompt_tokens);
        tps.push_back(run.tokens_per_s);
        fwd.push_back(run.forward_ms_per_step);
        sched.push_back(run.schedule_ms_per_step);
        steps = run.steps;
      }
      std::printf("| %d | %.1f | %llu | %.3f | %.4f | %.2f%% |\n", seqs, median(tps),
                  static_cast<unsigned long long>(steps), median(fwd), median(sched),
                  100.0 * median(sched) / median(fwd));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

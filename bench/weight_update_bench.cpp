// Updating every weight of a model in place from host f32 tensors, against a memcpy of the same
// bytes (the floor: an update reads each source byte and writes it once).
//
//   build/weight_update_bench [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--repeats 7]
//                             [--threads N]
//
// Sources: every tensor of the GGUF file, dequantized to f32 in host memory (what a trainer's
// CPU tensors are), under its GGUF name. Timed: swap_weights on an idle engine (checks, the
// engine's exclusive section, the writes, the prefix cache dropped), median over --repeats;
// the first update is reported apart, because on a quantized model it also allocates the f32
// tensors (Q4_1 blocks -> F32, model/weight_update.h). Floor: std::memcpy of the same bytes,
// tensor by tensor, into destinations allocated and touched beforehand, median over --repeats.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/weight_swap.h"
#include "model/gguf.h"
#include "model/loader.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Weight update in place vs memcpy of the same bytes");
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int repeats = 7;
  int threads = 0;
  app.add_option("--model", model_path, "GGUF model");
  app.add_option("--repeats", repeats, "Timed updates (median)");
  app.add_option("--threads", threads, "CPU threads of the backend (default: all)");
  CLI11_PARSE(app, argc, argv);

  bx::LoadOptions load;
  load.threads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  bx::LoadedModel model = bx::load_model(model_path, load);
  bx::Engine engine(model, bx::EngineOptions{});

  const bx::gguf::File file = bx::gguf::File::open(model_path);
  std::vector<std::vector<float>> host;
  std::vector<bx::WeightSource> sources;
  uint64_t bytes = 0;
  for (const bx::gguf::TensorInfo& t : file.tensors()) {
    host.emplace_back(static_cast<size_t>(t.n_elements));
    bx::gguf::dequantize_to_f32(t, file.tensor_data(t), host.back().data());
    std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());  // numpy order [rows, cols]
    sources.push_back(bx::WeightSource{t.name, host.back().data(), bx::DType::f32, shape, false});
    bytes += static_cast<uint64_t>(t.n_elements) * 4;
  }

  const auto update = [&] {
    const Clock::time_point start = Clock::now();
    bx::swap_weights(engine, model, sources, bx::InFlight::finish);
    return seconds_since(start);
  };
  const double first = update();
  std::vector<double> updates;
  for (int r = 0; r < repeats; ++r) updates.push_back(update());

  std::vector<std::vector<float>> dest(host.size());
  for (size_t i = 0; i < host.size(); ++i) dest[i].assign(host[i].size(), 1.0f);  // touched
  std::vector<double> copies;
  for (int r = 0; r < repeats; ++r) {
    const Clock::time_point start = Clock::now();
    for (size_t i = 0; i < host.size(); ++i) {
      std::memcpy(dest[i].data(), host[i].data(), host[i].size() * sizeof(float));
    }
    copies.push_back(seconds_since(start));
  }

  const double update_s = median(updates), copy_s = median(copies);
  std::printf("model            %s (%zu tensors, %.1f MB as f32)\n", model_path.c_str(),
              sources.size(), static_cast<double>(bytes) / 1e6);
  std::printf("first update     %8.2f ms  (allocates the f32 tensors: held as %s now)\n",
              1e3 * first, model.weight_storage.c_str());
  std::printf("update in place  %8.2f ms  %6.2f GB/s  (median of %d)\n", 1e3 * update_s,
              static_cast<double>(bytes) / update_s / 1e9, repeats);
  std::printf("memcpy floor     %8.2f ms  %6.2f GB/s  (median of %d)\n", 1e3 * copy_s,
              static_cast<double>(bytes) / copy_s / 1e9, repeats);
  std::printf("ratio            %8.2fx  (target <= 2x)\n", update_s / copy_s);
  std::printf("weights_version  %llu, fingerprint %s\n",
              static_cast<unsigned long long>(model.weights_version),
              model.system_fingerprint().c_str());
  return 0;
}

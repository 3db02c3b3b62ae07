// Updating every weight of a model on the GPU from device tensors (a trainer's CUDA tensors,
// which never visit the host), against a device-to-device copy of the same bytes.
//
//   build/weight_update_cuda_bench [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--repeats 7]
//
// Sources: every tensor of the GGUF file dequantized to f32, copied once to device buffers, and
// the same values as bf16 device buffers. Timed (wall clock, median over --repeats, each
// complete on return): swap_weights on an idle engine from the f32 device tensors, from the bf16
// ones, and from host f32 tensors; floor: cudaMemcpy device-to-device of the f32 (and of the
// bf16) source bytes, tensor by tensor, synchronised once at the end.
#include <cuda_runtime_api.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
#include "core/half.h"
#include "engine/engine.h"
#include "engine/weight_swap.h"
#include "kernels/cuda/cuda_check.h"
#include "model/gguf.h"
#include "model/loader.h"
#include "timing.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double median_seconds(int repeats, F&& f) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const Clock::time_point start = Clock::now();
    f();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(times);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Weight update on the GPU from device tensors vs a device copy");
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int repeats = 7;
  app.add_option("--model", model_path, "GGUF model");
  app.add_option("--repeats", repeats, "Timed updates (median)");
  CLI11_PARSE(app, argc, argv);
  if (!bx::bench::report_device("weight_update_cuda_bench")) return 0;
  using bx::cuda::check_cuda;

  bx::LoadOptions load;
  load.make_backend = [] { return std::make_unique<bx::CudaBackend>(); };
  bx::LoadedModel model = bx::load_model(model_path, load);
  bx::Engine engine(model, bx::EngineOptions{});

  const bx::gguf::File file = bx::gguf::File::open(model_path);
  std::vector<std::vector<float>> host;
  std::vector<bx::cuda::DeviceBuffer> device_f32, device_bf16;
  std::vector<bx::WeightSource> from_host, from_f32, from_bf16;
  uint64_t elements = 0;
  for (const bx::gguf::TensorInfo& t : file.tensors()) {
    const size_t n = static_cast<size_t>(t.n_elements);
    host.emplace_back(n);
    bx::gguf::dequantize_to_f32(t, file.tensor_data(t), host.back().data());
    std::vector<uint16_t> bf16(n);
    for (size_t i = 0; i < n; ++i) bf16[i] = bx::f32_to_bf16(host.back()[i]);
    device_f32.emplace_back(n * 4);
    device_bf16.emplace_back(n * 2);
    check_cuda(
        cudaMemcpy(device_f32.back().get(), host.back().data(), n * 4, cudaMemcpyHostToDevice),
        "upload");
    check_cuda(cudaMemcpy(device_bf16.back().get(), bf16.data(), n * 2, cudaMemcpyHostToDevice),
               "upload");
    const std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());
    from_host.push_back({t.name, host.back().data(), bx::DType::f32, shape, false});
    from_f32.push_back({t.name, device_f32.back().get(), bx::DType::f32, shape, true});
    from_bf16.push_back({t.name, device_bf16.back().get(), bx::DType::bf16, shape, true});
    elements += n;
  }
  std::vector<bx::cuda::DeviceBuffer> dest_f32, dest_bf16;
  for (const auto& b : device_f32) dest_f32.emplace_back(b.bytes());
  for (const auto& b : device_bf16) dest_bf16.emplace_back(b.bytes());

  const auto swap = [&](const std::vector<bx::WeightSource>& sources) {
    return [&] { bx::swap_weights(engine, model, sources, bx::InFlight::finish); };
  };
  const auto copy = [&](std::vector<bx::cuda::DeviceBuffer>& dst,
                        const std::vector<bx::cuda::DeviceBuffer>& src) {
    return [&] {
      for (size_t i = 0; i < src.size(); ++i) {
        check_cuda(
            cudaMemcpyAsync(dst[i].get(), src[i].get(), src[i].bytes(), cudaMemcpyDeviceToDevice),
            "copy");
      }
      check_cuda(cudaDeviceSynchronize(), "copy");
    };
  };
  swap(from_f32)();  // warm-up (and the first version)
  copy(dest_f32, device_f32)();
  const double f32_s = median_seconds(repeats, swap(from_f32));
  const double bf16_s = median_seconds(repeats, swap(from_bf16));
  const double host_s = median_seconds(repeats, swap(from_host));
  const double copy_f32_s = median_seconds(repeats, copy(dest_f32, device_f32));
  const double copy_bf16_s = median_seconds(repeats, copy(dest_bf16, device_bf16));

  const double mb_f32 = 4.0 * static_cast<double>(elements) / 1e6;
  std::printf("model                         %s (%zu tensors, %.1f MB as f32)\n",
              model_path.c_str(), from_f32.size(), mb_f32);
  std::printf("update from device f32        %8.3f ms\n", 1e3 * f32_s);
  std::printf("device copy of the f32 bytes  %8.3f ms   ratio %.2fx (target <= 2x)\n",
              1e3 * copy_f32_s, f32_s / copy_f32_s);
  std::printf("update from device bf16       %8.3f ms\n", 1e3 * bf16_s);
  std::printf("device copy of the bf16 bytes %8.3f ms   ratio %.2fx\n", 1e3 * copy_bf16_s,
              bf16_s / copy_bf16_s);
  std::printf("update from host f32          %8.3f ms   (pageable host memory)\n", 1e3 * host_s);
  std::printf("weights_version %llu, fingerprint %s\n",
              static_cast<unsigned long long>(model.weights_version),
              model.system_fingerprint().c_str());
  return 0;
}

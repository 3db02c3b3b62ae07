// Quantized-weight GEMM benchmark (kernels/cuda/gemm_quant.h) against the bf16 invariant GEMM
// (gemm.h) on the Qwen3-8B decode shapes (K -> N), M in {1, 8}: the per-GEMM figures behind
// bench/cuda/GEMM_NOTES.md's Q4_K decode section.
//
// Shapes: qkv 4096 -> 6144 (q|k|v as one packed GEMM), o 4096 -> 4096, gate+up 4096 -> 2 x 12288 as
// one gated GEMM, down 12288 -> 4096, lm head 4096 -> 151936. Formats: Q4_K, Q6_K, Q8_0 (each
// shape's W in that format) and bf16. Floor = bytes of W as held / copy bandwidth (measured
// first: device-to-device cudaMemcpy of 1 GiB, read + write); "floor / time" is the share of the
// memory system a GEMM reaches. Timing as gemm_bench (timing.h): events around batches of
// launches, W rotated among copies that together exceed 120 MB (more than twice the L2) so it is
// read from memory, median of 11 batches. W bytes are uniform random floats' bytes: any bits do
// for timing (the arithmetic is the same instructions whatever the values).
//
// First, each shape's chain bound (kernels/cuda/mma_chain.h): the time of N / 8 warps issuing the
// K / 16 dependent mma steps every output element's chain is, with no memory traffic; no
// schedule of the invariant chain runs an M <= 16 GEMM faster.
//
// The quantized rows: automatic (quant_gemm_pick_schedule), then the stream and chain_warps
// schedules by name ("Q4_K stream", "Q4_K chain_warps").
//
// Usage: gemm_quant_bench [--formats Q4_K,Q6_K,Q8_0,BF16]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemm_quant.h"
#include "kernels/cuda/mma_chain.h"
#include "kernels/quant.h"
#include "timing.h"

namespace {

using bx::cuda::DeviceBuffer;

struct Shape {
  const char* name;
  int64_t K, N;
  bool gated;  // N gate rows and N up rows, one gated GEMM
};

constexpr Shape kShapes[] = {{"qkv", 4096, 6144, false},
                             {"o", 4096, 4096, false},
                             {"gate+up", 4096, 12288, true},
                             {"down", 12288, 4096, false},
                             {"lm head", 4096, 151936, false}};

// Bytes of one [rows, K] weight in `format` ("BF16" or a block format name).
int64_t weight_bytes(const std::string& format, int64_t rows, int64_t K) {
  if (format == "BF16") return rows * K * 2;
  for (const bx::quant::BlockFormat& f : bx::quant::kBlockFormats) {
    if (f.name == format) return rows * bx::quant::bytes_for(f.dtype, K);
  }
  throw bx::Error("gemm_quant_bench: unknown format " + format);
}

int format_id(const std::string& format) {
  for (const bx::quant::BlockFormat& f : bx::quant::kBlockFormats) {
    if (f.name == format) return f.id;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> formats = {"Q4_K", "Q6_K", "Q8_0", "BF16"};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--formats") == 0) {
      formats.clear();
      std::string list = argv[i + 1];
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        formats.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
    }
  }
  if (!bx::bench::report_device("gemm_quant_bench")) return 0;
  try {
    const double bandwidth = bx::bench::copy_bandwidth();
    std::printf("copy bandwidth: %.3f TB/s\n\n", bandwidth / 1e12);
    // The chain bound (mma_chain.h): N / 8 warps each issuing K / 16 dependent mma steps.
    std::printf("| shape | K -> N | chains | steps | chain us |\n|---|---|---|---|---|\n");
    for (const Shape& s : kShapes) {
      const int64_t chains = s.N / 8;
      DeviceBuffer out(static_cast<size_t>(chains) * 16);
      const double us = bx::bench::median_us(
          [&](int) { bx::cuda::mma_chain(chains, s.K / 16, out.get<float>(), nullptr); }, 1);
      std::printf("| chain %s | %lld -> %lld | %lld | %lld | %.1f |\n", s.name,
                  static_cast<long long>(s.K), static_cast<long long>(s.N),
                  static_cast<long long>(chains), static_cast<long long>(s.K / 16), us);
    }
    std::printf("\n| shape | K -> N | format | M | us | W MB | floor us | floor / time |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (const Shape& s : kShapes) {
      for (const std::string& format : formats) {
        const int64_t rows = s.gated ? 2 * s.N : s.N;  // gate rows then up rows
        const int64_t bytes = weight_bytes(format, rows, s.K);
        const int rotations =
            static_cast<int>(std::clamp<int64_t>((int64_t{120} << 20) / bytes + 1, 1, 16));
        std::vector<DeviceBuffer> w;
        for (int r = 0; r < rotations; ++r) {
          w.emplace_back(static_cast<size_t>(bytes + 16));
          bx::cuda::fill_uniform_f32(w.back().get<float>(), bytes / 4, 7 + r, -1, 1, nullptr);
        }
        for (int64_t M : {int64_t{1}, int64_t{8}}) {
          DeviceBuffer x(static_cast<size_t>(M * s.K) * 2), y(static_cast<size_t>(M * s.N) * 4);
          bx::cuda::fill_uniform_bf16(x.get<uint16_t>(), M * s.K, 3, -1, 1, nullptr);
          const int id = format_id(format);
          // Quantized formats: automatic, then each decode schedule by name (bf16: its one row).
          std::vector<bx::cuda::QuantGemmSchedule> schedules = {
              bx::cuda::QuantGemmSchedule::automatic};
          if (id >= 0) {
            schedules.push_back(bx::cuda::QuantGemmSchedule::stream);
            schedules.push_back(bx::cuda::QuantGemmSchedule::chain_warps);
          }
          for (const bx::cuda::QuantGemmSchedule schedule : schedules) {
            const double us = bx::bench::median_us(
                [&](int r) {
                  const auto* base = w[static_cast<size_t>(r)].get<uint8_t>();
                  if (id < 0) {  // bf16
                    bx::cuda::GemmArgs a;
                    a.x = x.get<uint16_t>();
                    a.x_stride = s.K;
                    a.w = reinterpret_cast<const uint16_t*>(base);
                    a.w_stride = s.K;
                    if (s.gated) a.w_up = a.w + s.N * s.K;
                    a.y = y.get<float>();
                    a.y_stride = s.N;
                    a.M = M;
                    a.N = s.N;
                    a.K = s.K;
                    bx::cuda::gemm_bf16(a, nullptr);
                  } else {
                    bx::cuda::QuantGemmArgs a;
                    a.x = x.get<uint16_t>();
                    a.x_stride = s.K;
                    a.w = base;
                    a.w_row_bytes = bytes / rows;
                    a.format = id;
                    if (s.gated) a.w_up = base + s.N * a.w_row_bytes;
                    a.y = y.get<float>();
                    a.y_stride = s.N;
                    a.M = M;
                    a.N = s.N;
                    a.K = s.K;
                    bx::cuda::gemm_quant(a, nullptr, schedule);
                  }
                },
                rotations);
            const double floor_us = static_cast<double>(bytes) / bandwidth * 1e6;
            const std::string label =
                schedule == bx::cuda::QuantGemmSchedule::automatic
                    ? format
                    : format + " " + bx::cuda::quant_gemm_schedule_name(schedule);
            std::printf("| %s | %lld -> %lld%s | %s | %lld | %.1f | %.1f | %.1f | %.2f |\n", s.name,
                        static_cast<long long>(s.K), static_cast<long long>(s.N),
                        s.gated ? " x2" : "", label.c_str(), static_cast<long long>(M), us,
                        static_cast<double>(bytes) / 1e6, floor_us, floor_us / us);
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemm_quant_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

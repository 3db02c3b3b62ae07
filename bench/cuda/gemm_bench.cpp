// GEMM benchmark: the invariant kernel (kernels/cuda/gemm.h) against cuBLAS, side by side in one
// run, on the Qwen3-8B linear shapes (K -> N) for M in {1, 8, 32, 128, 512, 2048, 8192}.
//
// First it measures this device's two ceilings (METHOD.md): copy bandwidth (a device-to-device
// cudaMemcpy of 1 GiB, bytes read plus written) and the bf16 tensor-core rate (cuBLAS on
// 8192^3). Each case's floor is max(bytes / bandwidth, flops / rate) with bytes = x + W + y read
// or written once (2 M K + 2 N K + 4 M N) and flops = 2 M N K; for M <= 32 the table also gives
// the weight-streaming floor 2 N K / bandwidth as a share of the measured time ("W floor").
//
// Timing: CUDA events around batches of launches (about 2 ms each, after a warm-up), inputs
// rotated among copies that together exceed 3x the L2 cache so W is read from memory; the median
// of 11 batches. Inputs are random (never zeros). Each case checks that the two results agree
// (relative L2 difference < 1e-4: they differ only in the order of f32 additions).
//
// Fused projections (gemm.h epilogues), Qwen3-8B shapes, K = 4096: q|k|v (N = 4096 + 1024 + 1024)
// as one GEMM with three output parts against three GEMMs, and gate|up (F = 12288) as one gated
// GEMM writing silu(gate) * up against two GEMMs and silu_mul; cuBLAS on the concatenated W
// (6144 or 24576 rows, no silu) for scale. Each fused result is checked bitwise against its
// unfused composition. Floor as above, bytes = x + W + the fused outputs.
//
// Usage: gemm_bench [--quick] [--sweep] [--fused-only]
//   --quick       M in {1, 128, 2048} only
//   --sweep       also time every tile shape on every case (the data behind gemm_pick_tile)
//   --fused-only  only the fused projections
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rows.h"
#include "timing.h"

namespace {

using bx::cuda::check_cuda;
using bx::cuda::DeviceBuffer;
using bx::bench::median_us;


double relative_difference(const DeviceBuffer& a, const DeviceBuffer& b, size_t n) {
  std::vector<float> ha(n), hb(n);
  a.download(ha.data(), n * sizeof(float));
  b.download(hb.data(), n * sizeof(float));
  double d = 0, r = 0;
  for (size_t i = 0; i < n; ++i) {
    d += (static_cast<double>(ha[i]) - hb[i]) * (static_cast<double>(ha[i]) - hb[i]);
    r += static_cast<double>(hb[i]) * hb[i];
  }
  return std::sqrt(d / std::max(r, 1e-300));
}

double l2_bytes(const cudaDeviceProp& prop) {
  return static_cast<double>(prop.l2CacheSize);
}

bool same_bits(const DeviceBuffer& a, const DeviceBuffer& b, size_t floats) {
  std::vector<float> ha(floats), hb(floats);
  a.download(ha.data(), floats * sizeof(float));
  b.download(hb.data(), floats * sizeof(float));
  return std::memcmp(ha.data(), hb.data(), floats * sizeof(float)) == 0;
}

// The fused projections table (see the header comment); status = 1 if a fused result differs
// from its unfused composition.
std::vector<std::string> fused_projections(const std::vector<int64_t>& ms, double bandwidth,
                                           double rate, double l2, int& status) {
  const int64_t K = 4096, Q = 4096, KV = 1024, F = 12288;
  std::vector<std::string> table = {
      "| fused op | M | fused us | unfused us | unfused/fused | cuBLAS one GEMM us | floor us | "
      "fused/floor | bound | bits = unfused |",
      "|---|---|---|---|---|---|---|---|---|---|"};
  const int64_t max_m = ms.back();
  for (const bool gated : {false, true}) {
    const int64_t rows = gated ? 2 * F : Q + 2 * KV;  // rows of W read
    const int64_t out_cols = gated ? F : Q + 2 * KV;  // f32 columns written by the fused GEMM
    const double w_bytes = 2.0 * static_cast<double>(rows * K);
    const int rot = std::clamp(static_cast<int>(std::ceil(3.0 * l2 / w_bytes)), 1, 8);
    std::vector<DeviceBuffer> ws, xs;
    for (int r = 0; r < rot; ++r) {
      ws.emplace_back(static_cast<size_t>(w_bytes));
      xs.emplace_back(static_cast<size_t>(2 * max_m * K));
      bx::cuda::fill_uniform_bf16(ws.back().get<uint16_t>(), rows * K, 300 + r, -1, 1, nullptr);
      bx::cuda::fill_uniform_bf16(xs.back().get<uint16_t>(), max_m * K, 400 + r, -1, 1, nullptr);
    }
    // Fused outputs: gated -> [M, F]; q|k|v -> three buffers. Unfused: the same layout (q|k|v)
    // or g, u [M, F] (gated, silu_mul into g). cuBLAS: [M, rows].
    DeviceBuffer a_out(static_cast<size_t>(4 * max_m * (gated ? F : Q))),
        b_out(static_cast<size_t>(4 * max_m * (gated ? F : KV))),
        c_out(static_cast<size_t>(4 * max_m * (gated ? 1 : KV)));
    DeviceBuffer a_ref(a_out.bytes()), b_ref(b_out.bytes()), c_ref(c_out.bytes());
    DeviceBuffer y_blas(static_cast<size_t>(4 * max_m * rows));
    for (int64_t M : ms) {
      auto base = [&](int r, int64_t w_row, int64_t n, DeviceBuffer& y) {
        bx::cuda::GemmArgs a;
        a.x = xs[r].get<uint16_t>();
        a.x_stride = K;
        a.w = ws[r].get<uint16_t>() + w_row * K;
        a.w_stride = K;
        a.y = y.get<float>();
        a.y_stride = n;
        a.M = M;
        a.N = n;
        a.K = K;
        return a;
      };
      auto fused = [&](int r) {
        if (gated) {
          bx::cuda::GemmArgs a = base(r, 0, F, a_out);
          a.w_up = ws[r].get<uint16_t>() + F * K;
          bx::cuda::gemm_bf16(a, nullptr);
        } else {
          bx::cuda::GemmArgs a = base(r, 0, Q + 2 * KV, a_out);
          a.y_stride = Q;
          a.parts[a.n_parts++] = bx::cuda::GemmOutputPart{Q, b_out.get<float>(), KV};
          a.parts[a.n_parts++] = bx::cuda::GemmOutputPart{Q + KV, c_out.get<float>(), KV};
          bx::cuda::gemm_bf16(a, nullptr);
        }
      };
      auto unfused = [&](int r) {
        if (gated) {
          bx::cuda::gemm_bf16(base(r, 0, F, a_ref), nullptr);
          bx::cuda::gemm_bf16(base(r, F, F, b_ref), nullptr);
          bx::cuda::silu_mul(a_ref.get<float>(), F, b_ref.get<float>(), F, a_ref.get<float>(), F, M,
                             F, nullptr);
        } else {
          bx::cuda::gemm_bf16(base(r, 0, Q, a_ref), nullptr);
          bx::cuda::gemm_bf16(base(r, Q, KV, b_ref), nullptr);
          bx::cuda::gemm_bf16(base(r, Q + KV, KV, c_ref), nullptr);
        }
      };
      const double fused_us = median_us(fused, rot);
      const double unfused_us = median_us(unfused, rot);
      const double blas_us = median_us(
          [&](int r) { bx::cuda::gemm_bf16_cublas(base(r, 0, rows, y_blas), nullptr); }, rot);
      fused(0);
      unfused(0);
      check_cuda(cudaDeviceSynchronize(), "fused");
      bool same = same_bits(a_out, a_ref, static_cast<size_t>(M * (gated ? F : Q)));
      if (!gated) {
        same = same && same_bits(b_out, b_ref, static_cast<size_t>(M * KV)) &&
               same_bits(c_out, c_ref, static_cast<size_t>(M * KV));
      }
      if (!same) status = 1;
      const double Md = static_cast<double>(M);
      const double flops = 2.0 * Md * static_cast<double>(rows * K);
      const double bytes = 2.0 * Md * K + w_bytes + 4.0 * Md * static_cast<double>(out_cols);
      const double t_mem = bytes / bandwidth * 1e6, t_math = flops / rate * 1e6;
      const double floor = std::max(t_mem, t_math);
      char line[512];
      std::snprintf(
          line, sizeof line, "| %s | %lld | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %s | %s |",
          gated ? "gate|up + silu (4096 -> 2x12288)" : "q|k|v (4096 -> 4096+1024+1024)",
          static_cast<long long>(M), fused_us, unfused_us, unfused_us / fused_us, blas_us, floor,
          fused_us / floor, t_mem > t_math ? "memory" : "math", same ? "yes" : "NO");
      table.push_back(line);
    }
  }
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, sweep = false, fused_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--sweep") == 0)
      sweep = true;
    else if (std::strcmp(argv[i], "--fused-only") == 0)
      fused_only = true;
    else {
      std::printf("gemm_bench: unknown argument '%s' (expected --quick, --sweep, --fused-only)\n",
                  argv[i]);
      return 2;
    }
  }
  if (!bx::cuda::hopper_available()) {
    std::printf("gemm_bench: no Hopper GPU found; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);

  // Ceiling 1: copy bandwidth.
  const double bandwidth = bx::bench::copy_bandwidth();  // bytes/s, read + write
  // Ceiling 2: bf16 tensor-core rate through cuBLAS, 8192^3.
  const int64_t P = 8192;
  DeviceBuffer pa(P * P * 2), pb(P * P * 2), pc(P * P * 4);
  bx::cuda::fill_uniform_bf16(pa.get<uint16_t>(), P * P, 2, -1, 1, nullptr);
  bx::cuda::fill_uniform_bf16(pb.get<uint16_t>(), P * P, 3, -1, 1, nullptr);
  bx::cuda::GemmArgs peak;
  peak.x = pa.get<uint16_t>();
  peak.w = pb.get<uint16_t>();
  peak.y = pc.get<float>();
  peak.x_stride = peak.w_stride = peak.y_stride = P;
  peak.M = peak.N = peak.K = P;
  const double peak_us = median_us([&](int) { bx::cuda::gemm_bf16_cublas(peak, nullptr); }, 1);
  const double peak_flops = 2.0 * std::pow(static_cast<double>(P), 3);
  const double rate = peak_flops / (peak_us * 1e-6);  // flop/s
  const double ours_peak_us = median_us([&](int) { bx::cuda::gemm_bf16(peak, nullptr); }, 1);
  std::printf(
      "ceilings: copy %.2f TB/s (1 GiB, read+write); cuBLAS bf16 8192^3 %.0f TFLOP/s "
      "(%.0f us); invariant kernel on 8192^3: %.0f TFLOP/s\n",
      bandwidth / 1e12, rate / 1e12, peak_us, peak_flops / (ours_peak_us * 1e-6) / 1e12);
  std::printf("tile sweep on 8192^3:");
  for (bx::cuda::GemmTile tile : bx::cuda::kGemmTiles) {
    const double us = median_us([&](int) { bx::cuda::gemm_bf16(peak, nullptr, tile); }, 1, 5);
    std::printf(" %s %.0f TFLOP/s;", bx::cuda::gemm_tile_name(tile),
                peak_flops / (us * 1e-6) / 1e12);
  }
  std::printf("\n");
  pa = DeviceBuffer();
  pb = DeviceBuffer();
  pc = DeviceBuffer();

  struct Shape {
    int64_t K, N;
  };
  const Shape shapes[] = {{4096, 6144}, {4096, 4096}, {4096, 24576}, {12288, 4096}, {4096, 151936}};
  std::vector<int64_t> ms = {1, 8, 32, 128, 512, 2048, 8192};
  if (quick) ms = {1, 128, 2048};
  int status = 0;
  std::vector<std::string> fused_table =
      fused_projections(ms, bandwidth, rate, l2_bytes(prop), status);
  if (fused_only) {
    std::printf("\n");
    for (const std::string& line : fused_table) std::printf("%s\n", line.c_str());
    return status;
  }
  const double l2 = l2_bytes(prop);

  std::vector<std::string> table, sweep_table;
  table.push_back(
      "| K -> N | M | tile | invariant us | cuBLAS us | cuBLAS/inv | inv TFLOP/s | floor us | "
      "inv/floor | bound | W floor / inv | max rel diff |");
  table.push_back("|---|---|---|---|---|---|---|---|---|---|---|---|");
  std::string sweep_head = "| K -> N | M |";
  for (bx::cuda::GemmTile tile : bx::cuda::kGemmTiles) {
    sweep_head += std::string(" ") + bx::cuda::gemm_tile_name(tile) + " us |";
  }
  sweep_table.push_back(sweep_head + " best | auto |");
  sweep_table.push_back("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const Shape& s : shapes) {
    const int64_t max_m = ms.back();
    const double Kd = static_cast<double>(s.K), Nd = static_cast<double>(s.N);
    const double w_bytes = 2.0 * Nd * Kd;
    const double x_bytes = 2.0 * static_cast<double>(max_m) * Kd;
    const int rot = std::clamp(static_cast<int>(std::ceil(3.0 * l2 / w_bytes)), 1, 8);
    std::vector<DeviceBuffer> ws, xs;
    for (int r = 0; r < rot; ++r) {
      ws.emplace_back(static_cast<size_t>(w_bytes));
      xs.emplace_back(static_cast<size_t>(x_bytes));
      bx::cuda::fill_uniform_bf16(ws.back().get<uint16_t>(), s.N * s.K, 100 + r, -1, 1, nullptr);
      bx::cuda::fill_uniform_bf16(xs.back().get<uint16_t>(), max_m * s.K, 200 + r, -1, 1, nullptr);
    }
    DeviceBuffer y_ours(static_cast<size_t>(4 * max_m * s.N));
    DeviceBuffer y_blas(static_cast<size_t>(4 * max_m * s.N));
    {
      // Reference for the small-M rows: a device-to-device copy that moves as many bytes as W
      // (w_bytes / 2 read + w_bytes / 2 written), launched back to back like the GEMMs.
      DeviceBuffer half_a(static_cast<size_t>(w_bytes / 2)),
          half_b(static_cast<size_t>(w_bytes / 2));
      const double copy_w_us = median_us(
          [&](int) {
            check_cuda(cudaMemcpyAsync(half_b.get(), half_a.get(), half_a.bytes(),
                                       cudaMemcpyDeviceToDevice),
                       "copy");
          },
          1);
      std::printf("%lld -> %lld: W %.1f MB, W floor %.1f us, a copy moving W's bytes %.1f us\n",
                  static_cast<long long>(s.K), static_cast<long long>(s.N), w_bytes / 1e6,
                  w_bytes / bandwidth * 1e6, copy_w_us);
    }
    for (int64_t M : ms) {
      auto args = [&](int r, DeviceBuffer& y) {
        bx::cuda::GemmArgs a;
        a.x = xs[r].get<uint16_t>();
        a.x_stride = s.K;
        a.w = ws[r].get<uint16_t>();
        a.w_stride = s.K;
        a.y = y.get<float>();
        a.y_stride = s.N;
        a.M = M;
        a.N = s.N;
        a.K = s.K;
        return a;
      };
      const double ours =
          median_us([&](int r) { bx::cuda::gemm_bf16(args(r, y_ours), nullptr); }, rot);
      const double blas =
          median_us([&](int r) { bx::cuda::gemm_bf16_cublas(args(r, y_blas), nullptr); }, rot);
      bx::cuda::gemm_bf16(args(0, y_ours), nullptr);
      bx::cuda::gemm_bf16_cublas(args(0, y_blas), nullptr);
      check_cuda(cudaDeviceSynchronize(), "gemm");
      const double diff = relative_difference(y_ours, y_blas, static_cast<size_t>(M * s.N));
      const double Md = static_cast<double>(M);
      const double flops = 2.0 * Md * Nd * Kd;
      const double bytes = 2.0 * Md * Kd + w_bytes + 4.0 * Md * Nd;
      const double t_mem = bytes / bandwidth * 1e6, t_math = flops / rate * 1e6;
      const double floor = std::max(t_mem, t_math);
      const double w_floor = w_bytes / bandwidth * 1e6;
      char w_share[32] = "-";
      if (M <= 32) std::snprintf(w_share, sizeof w_share, "%.0f%%", 100.0 * w_floor / ours);
      const bx::cuda::GemmTile picked = bx::cuda::gemm_pick_tile(M, s.N, prop.multiProcessorCount);
      char line[512];
      std::snprintf(line, sizeof line,
                    "| %lld -> %lld | %lld | %s | %.1f | %.1f | %.2f | %.0f | %.1f | %.2f | %s | "
                    "%s | %.1e |",
                    static_cast<long long>(s.K), static_cast<long long>(s.N),
                    static_cast<long long>(M), bx::cuda::gemm_tile_name(picked), ours, blas,
                    blas / ours, flops / (ours * 1e-6) / 1e12, floor, ours / floor,
                    t_mem > t_math ? "memory" : "math", w_share, diff);
      table.push_back(line);
      if (!(diff <= 1e-4)) {
        std::printf("gemm_bench: results differ from cuBLAS by %.2e\n", diff);
        status = 1;
      }
      if (sweep) {
        std::string row = "| " + std::to_string(s.K) + " -> " + std::to_string(s.N) + " | " +
                          std::to_string(M) + " |";
        double best = 1e30;
        const char* best_name = "";
        for (bx::cuda::GemmTile tile : bx::cuda::kGemmTiles) {
          const double us = median_us(
              [&](int r) { bx::cuda::gemm_bf16(args(r, y_ours), nullptr, tile); }, rot, 5);
          char cell[32];
          std::snprintf(cell, sizeof cell, " %.1f |", us);
          row += cell;
          if (us < best) {
            best = us;
            best_name = bx::cuda::gemm_tile_name(tile);
          }
        }
        sweep_table.push_back(row + " " + best_name + " | " + bx::cuda::gemm_tile_name(picked) +
                              " |");
      }
    }
  }
  if (sweep) {
    std::printf("\ntile sweep (invariant kernel, us):\n");
    for (const std::string& line : sweep_table) std::printf("%s\n", line.c_str());
  }
  std::printf("\n");
  for (const std::string& line : table) std::printf("%s\n", line.c_str());
  std::printf("\n");
  for (const std::string& line : fused_table) std::printf("%s\n", line.c_str());
  return status;
}

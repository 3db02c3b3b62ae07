// Memory-bound kernel benchmark (kernels/cuda/rows.h, rope.h) on the Qwen3-8B shapes: hidden
// 4096, MLP 12288, 32 query and 8 KV heads of 128.
//
// Ceiling: copy bandwidth B (a device-to-device cudaMemcpy of 1 GiB, bytes read plus written).
// floor = bytes read + written once / B; "of copy BW" = floor / measured time.
//   rmsnorm D=4096      T rows (the block and layer norms)
//   q-norm / k-norm     T x 32 and T x 8 rows of D = 128 (Qwen3's per-head norms)
//   ... two-pass        the same rows by rmsnorm_two_pass (reads x twice): the baseline
//   silu_mul, add_inplace, to_bf16_padded, embed_rows (bf16 table 151936 x 4096, scattered
//   ids), rope (32 heads, half-split)
//   q/k norm + rope     Qwen3's per-head norms and RoPE of q [T, 4096] and k [T, 1024] as the
//                       4 launches of the unfused sequence and as the fused launch
// Timing: CUDA events around batches of launches, median of 11 (timing.h); inputs rotated among
// copies that together exceed 3x the L2 where the buffers allow (T <= 64 stays L2-resident and
// launch-bound). Inputs are random (never zeros).
//
// Usage: rows_bench [--quick]   (--quick: T = 512, 2048, 8192 only)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fill.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/rows.h"
#include "timing.h"

namespace {

using bx::bench::median_us;
using bx::cuda::check_cuda;
using bx::cuda::DeviceBuffer;

constexpr size_t kRotateBytes = size_t{160} << 20;  // > 3x the 50 MB L2
constexpr int64_t kD = 4096, kF = 12288, kQHeads = 32, kKvHeads = 8, kHeadDim = 128;
constexpr int64_t kVocab = 151936;

// One kernel at T: bytes moved per launch, the launch on rotation r (of at most max_rotations
// copies: enough copies for kRotateBytes where the buffers allow).
void row_case(const char* name, int64_t T, double bytes, double bandwidth,
              const std::function<void(int)>& launch, int max_rotations) {
  const int rotations = static_cast<int>(
      std::clamp<double>(std::ceil(static_cast<double>(kRotateBytes) / bytes), 1, max_rotations));
  const double us = median_us(launch, rotations);
  const double floor_us = bytes / bandwidth * 1e6;
  std::printf("| %s | %lld | %.2f | %.2f | %.2f | %.0f%% |\n", name, static_cast<long long>(T),
              bytes / 1e6, floor_us, us, 100.0 * floor_us / us);
}

void rows(int64_t T, double bandwidth, const DeviceBuffer& table) {
  // The largest buffer set is silu_mul's: 3 x T x F floats.
  const double set_bytes = 3.0 * static_cast<double>(T) * kF * 4;
  const int rot = static_cast<int>(
      std::clamp<double>(std::ceil(static_cast<double>(kRotateBytes) / set_bytes), 1, 8));
  DeviceBuffer a(static_cast<size_t>(rot * T * kF) * 4), b(a.bytes()), c(a.bytes());
  bx::cuda::fill_uniform_f32(a.get<float>(), rot * T * kF, 21, -2, 2, nullptr);
  bx::cuda::fill_uniform_f32(b.get<float>(), rot * T * kF, 22, -2, 2, nullptr);
  DeviceBuffer w(static_cast<size_t>(kD) * 4);
  bx::cuda::fill_uniform_f32(w.get<float>(), kD, 23, 0.5f, 1.5f, nullptr);
  float* A = a.get<float>();
  float* B = b.get<float>();
  float* C = c.get<float>();
  const float* W = w.get<float>();
  const int64_t TD = T * kD, TF = T * kF;
  const int rot_d = static_cast<int>(rot * kF / kD);  // [T, D] slices in each buffer

  for (const bool two_pass : {false, true}) {
    const auto norm = two_pass ? bx::cuda::rmsnorm_two_pass : bx::cuda::rmsnorm;
    const std::string suffix = two_pass ? " two-pass" : "";
    row_case(
        ("rmsnorm D=4096" + suffix).c_str(), T, static_cast<double>(TD) * 8 + kD * 4, bandwidth,
        [&](int r) {
          norm(A + r * TD, kD, W, 1e-6f, C + r * TD, kD, T, kD, nullptr, bx::cuda::kRowThreads);
        },
        rot_d);
    for (const int64_t heads : {kQHeads, kKvHeads}) {
      const int64_t rows_n = T * heads, elems = rows_n * kHeadDim;
      row_case(((heads == kQHeads ? "q-norm 32x128" : "k-norm 8x128") + suffix).c_str(), T,
               static_cast<double>(elems) * 8 + kHeadDim * 4, bandwidth,
               [&](int r) {
                 norm(A + r * TD, kHeadDim, W, 1e-6f, C + r * TD, kHeadDim, rows_n, kHeadDim,
                      nullptr, bx::cuda::kRowThreads);
               },
               rot_d);
    }
  }
  row_case(
      "silu_mul", T, static_cast<double>(TF) * 12, bandwidth,
      [&](int r) {
        bx::cuda::silu_mul(A + r * TF, kF, B + r * TF, kF, C + r * TF, kF, T, kF, nullptr);
      },
      rot);
  row_case(
      "add_inplace", T, static_cast<double>(TD) * 12, bandwidth,
      [&](int r) { bx::cuda::add_inplace(C + r * TD, kD, B + r * TD, kD, T, kD, nullptr); }, rot_d);
  uint16_t* Cb = c.get<uint16_t>();
  row_case(
      "to_bf16_padded", T, static_cast<double>(TD) * 6, bandwidth,
      [&](int r) { bx::cuda::to_bf16_padded(A + r * TD, kD, Cb + r * TD, kD, T, kD, kD, nullptr); },
      rot_d);
  std::vector<int32_t> ids(static_cast<size_t>(T * rot_d));
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>((i * 7919 + 13) % (kVocab - 1));  // row + 1 exists
  DeviceBuffer dids(ids.size() * 4);
  dids.upload(ids.data(), ids.size() * 4);
  row_case(
      "embed_rows", T, static_cast<double>(TD) * 6, bandwidth,
      [&](int r) {
        bx::cuda::embed_rows(table.get(), true, kD, dids.get<int32_t>() + r * T, C + r * TD, kD, T,
                             kD, nullptr);
      },
      rot_d);
  // RoPE over q (32 heads x 128), in place; the cos/sin rows are read once per token.
  const int max_pos = 8192;
  DeviceBuffer cosv(static_cast<size_t>(max_pos) * 64 * 4), sinv(cosv.bytes());
  bx::cuda::fill_uniform_f32(cosv.get<float>(), max_pos * 64, 25, -1, 1, nullptr);
  bx::cuda::fill_uniform_f32(sinv.get<float>(), max_pos * 64, 26, -1, 1, nullptr);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t % max_pos);
  DeviceBuffer dpos(pos.size() * 4);
  dpos.upload(pos.data(), pos.size() * 4);
  const bx::cuda::RopeDeviceTable rt{cosv.get<float>(), sinv.get<float>(), 128, max_pos,
                                     bx::RopeLayout::half_split};
  row_case(
      "rope (32 heads)", T, static_cast<double>(TD) * 8 + static_cast<double>(T * 64 * 8),
      bandwidth,
      [&](int r) {
        bx::cuda::rope_inplace(A + r * TD, kD, dpos.get<int32_t>(), T, 32, rt, nullptr);
      },
      rot_d);
  // Qwen3's q/k norm + RoPE as the model runs it (q [T, 4096] and k [T, 1024], dense): the
  // four launches of the unfused sequence (q-norm, k-norm, rope q, rope k) against the one fused
  // launch. Bytes: q and k read and written once, plus the cos/sin rows.
  const int64_t TK = T * kKvHeads * kHeadDim;
  const double qk_bytes = static_cast<double>(TD + TK) * 8 + static_cast<double>(T * 64 * 8);
  row_case(
      "q/k norm + rope, 4 launches", T, qk_bytes, bandwidth,
      [&](int r) {
        float* q = A + r * TD;
        float* k = B + r * TD;
        bx::cuda::rmsnorm(q, kHeadDim, W, 1e-6f, q, kHeadDim, T * kQHeads, kHeadDim, nullptr);
        bx::cuda::rmsnorm(k, kHeadDim, W, 1e-6f, k, kHeadDim, T * kKvHeads, kHeadDim, nullptr);
        bx::cuda::rope_inplace(q, kD, dpos.get<int32_t>(), T, kQHeads, rt, nullptr);
        bx::cuda::rope_inplace(k, kKvHeads * kHeadDim, dpos.get<int32_t>(), T, kKvHeads, rt,
                               nullptr);
      },
      rot_d);
  row_case(
      "q/k norm + rope, fused", T, qk_bytes, bandwidth,
      [&](int r) {
        bx::cuda::QkNormRopeArgs qa;
        qa.q = A + r * TD;
        qa.q_stride = kD;
        qa.n_heads = kQHeads;
        qa.k = B + r * TD;
        qa.k_stride = kKvHeads * kHeadDim;
        qa.n_kv_heads = kKvHeads;
        qa.q_norm = W;
        qa.k_norm = W;
        qa.eps = 1e-6f;
        bx::cuda::qk_norm_rope_inplace(qa, dpos.get<int32_t>(), T, rt, nullptr);
      },
      rot_d);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  if (!bx::bench::report_device("rows_bench")) return 0;
  const double bandwidth = bx::bench::copy_bandwidth();
  std::printf("ceiling: copy %.2f TB/s (1 GiB, read+write)\n\n", bandwidth / 1e12);
  DeviceBuffer table(static_cast<size_t>(kVocab * kD) * 2);
  bx::cuda::fill_uniform_bf16(table.get<uint16_t>(), kVocab * kD, 24, -1, 1, nullptr);
  std::printf(
      "| memory-bound kernel | T | MB | floor us | us | of copy BW |\n|---|---|---|---|---|---|\n");
  const std::vector<int64_t> ts =
      quick ? std::vector<int64_t>{512, 2048, 8192} : std::vector<int64_t>{1, 64, 512, 2048, 8192};
  for (const int64_t T : ts) rows(T, bandwidth, table);
  return 0;
}

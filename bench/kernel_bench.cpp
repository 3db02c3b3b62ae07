// Kernel benchmark: measures this machine's own rooflines, then each CPU kernel against them.
//
//   kernel_bench [--threads N] [--isa scalar|avx2|avx512] [--quick] [--reps R]
//                [--dtype f32|bf16|q4_1|q4_k]
//
// 1. Peaks. FMA: a register-resident loop of independent FMAs on the chosen ISA (16-lane zmm
//    or 8-lane ymm; for scalar the AVX2 loop stands in), one thread and all threads.
//    Read bandwidth: a streaming sum over a buffer far larger than the last-level cache.
// 2. Kernels, one function per family (bench_matmul, bench_quant_matmul, bench_rows, ...). Each
//    row checks a few outputs bit for bit against the scalar reference before it is timed, and
//    prints the median of --reps runs next to its roofline: GFLOP/s and % of the FMA peak, and for
//    decode (M = 1) GB/s of weights read and % of the read bandwidth. Weights are cycled through
//    enough copies to exceed the caches, as a model's layers are, so each call reads them from
//    memory.
//
// Targets (bench/RESULTS.md): matmul M >= 64 at >= 60% of the FMA peak; matmul M = 1 on a
// matrix much larger than the caches at >= 70% of the read bandwidth.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/intrinsics.h"

#include "core/bandwidth.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/lanes.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/rows.h"

namespace bx {
namespace {

struct Options {
  int threads = 0;  // 0: all hardware threads
  Isa isa = Isa::scalar;
  bool quick = false;
  int reps = 0;  // 0: as many as fit a time budget per row
  std::string
      dtype;  // "f32", "bf16", "q4_1", "q4_k": matmul rows of that weight type only; empty: all
};

struct Peaks {
  double fma_1t = 0, fma_all = 0;  // GFLOP/s
  double bw_1t = 0, bw_all = 0;    // GB/s (1e9 bytes)
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// 64-byte aligned buffer of T, for weights and the bandwidth stream (4 KiB pages, as a plain
// allocation of model weights gets).
template <typename T>
struct Aligned {
  T* data = nullptr;
  size_t size = 0;
  explicit Aligned(size_t n)
      : data(static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}))), size(n) {}
  ~Aligned() { ::operator delete (data, std::align_val_t{64}); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

// ---- peaks ------------------------------------------------------------------------------------

constexpr int kChains = 16;  // independent FMA chains: more than latency x ports

__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c) * 0.01f);
  const __m512 b = _mm512_set1_ps(0.999f);
  const __m512 d = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], b, d);
  }
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  constexpr int kYmmChains = 12;  // 16 ymm registers
  __m256 acc[kYmmChains];
  for (int c = 0; c < kYmmChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c) * 0.01f);
  const __m256 b = _mm256_set1_ps(0.999f);
  const __m256 d = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kYmmChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], b, d);
  }
  __m256 s = acc[0];
  for (int c = 1; c < kYmmChains; ++c) s = _mm256_add_ps(s, acc[c]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0] + out[7];
}

// GFLOP/s of `threads` threads each running the FMA loop (one multiply-add = 2 flops).
double fma_peak(Isa isa, ThreadPool& pool, int threads, int reps) {
  const bool zmm = isa == Isa::avx512;
  const int64_t iters = 20'000'000;
  const double flops_per_thread = zmm ? 2.0 * 16 * kChains * static_cast<double>(iters)
                                      : 2.0 * 8 * 12 * static_cast<double>(iters);
  std::vector<double> rates;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<float> out(static_cast<size_t>(threads));
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        out[static_cast<size_t>(t)] = zmm ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
      }
    });
    const double s = seconds_since(start);
    for (float f : out) sink = sink + f;
    rates.push_back(flops_per_thread * threads / s / 1e9);
  }
  return median(rates);
}

Peaks measure_peaks(const Options& opt, ThreadPool& pool) {
  Peaks p;
  const Isa simd = opt.isa == Isa::avx512 ? Isa::avx512 : Isa::avx2;
  const int reps = opt.quick ? 3 : 5;
  const int n = pool.size();
  if (isa_supported(simd)) {
    p.fma_1t = fma_peak(simd, pool, 1, reps);
    p.fma_all = fma_peak(simd, pool, n, reps);
    const size_t bytes = opt.quick ? size_t{512} << 20 : size_t{2} << 30;
    ThreadPool one_thread(1);
    p.bw_1t = measure_read_bandwidth_gbs(one_thread, bytes, reps);
    p.bw_all = measure_read_bandwidth_gbs(pool, bytes, reps);
  }
  return p;
}

// ---- table ------------------------------------------------------------------------------------

struct Row {
  std::string kernel, dtype;
  int64_t M = 0, K = 0, N = 0;
  double ms = 0, gflops = 0, pct_fma = 0, gbs = 0, pct_bw = 0;
  std::string target, status;
};

void print_header() {
  std::printf("%-12s %-5s %5s %6s %6s %9s %8s %6s %7s %6s  %-14s %s\n", "kernel", "w", "M", "K",
              "N", "ms", "GFLOP/s", "%FMA", "GB/s", "%BW", "target", "status");
}

void print_row(const Row& r) {
  auto num = [](double v, const char* fmt) {
    char b[32];
    if (v <= 0) return std::string("-");
    std::snprintf(b, sizeof b, fmt, v);
    return std::string(b);
  };
  std::printf("%-12s %-5s %5lld %6s %6lld %9s %8s %6s %7s %6s  %-14s %s\n", r.kernel.c_str(),
              r.dtype.c_str(), static_cast<long long>(r.M),
              r.K > 0 ? std::to_string(r.K).c_str() : "-", static_cast<long long>(r.N),
              num(r.ms, "%.3f").c_str(), num(r.gflops, "%.1f").c_str(),
              num(r.pct_fma, "%.0f%%").c_str(), num(r.gbs, "%.1f").c_str(),
              num(r.pct_bw, "%.0f%%").c_str(), r.target.c_str(), r.status.c_str());
  std::fflush(stdout);
}

// Median milliseconds of `reps` calls of fn(rep), after one warm-up call.
double time_ms(int reps, const std::function<void(int)>& fn) {
  fn(0);
  std::vector<double> ms;
  for (int r = 1; r <= reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn(r);
    ms.push_back(seconds_since(start) * 1e3);
  }
  return median(ms);
}

// ---- matmul -----------------------------------------------------------------------------------

// Weight copies: enough to exceed `bytes_total`, so a call finds its weights in memory only.
struct WeightSet {
  DType dtype;
  int64_t N, K;
  std::vector<std::unique_ptr<Aligned<uint16_t>>> bf16;
  std::vector<std::unique_ptr<Aligned<float>>> f32;
  size_t copies() const { return dtype == DType::bf16 ? bf16.size() : f32.size(); }
  const void* copy(size_t i) const {
    return dtype == DType::bf16 ? static_cast<const void*>(bf16[i]->data) : f32[i]->data;
  }
  size_t bytes() const {
    return static_cast<size_t>(N * K) * (dtype == DType::bf16 ? sizeof(uint16_t) : sizeof(float));
  }
};

WeightSet make_weight_set(DType dtype, int64_t N, int64_t K, size_t bytes_total, ThreadPool& pool) {
  WeightSet s{dtype, N, K, {}, {}};
  const size_t copies = std::max<size_t>(1, (bytes_total + s.bytes() - 1) / s.bytes());
  const size_t n = static_cast<size_t>(N * K);
  for (size_t c = 0; c < copies; ++c) {
    // A cheap deterministic pattern in [-1, 1), filled in parallel (first touch).
    auto value = [c](int64_t i) {
      const uint32_t h = static_cast<uint32_t>((static_cast<uint64_t>(i) + c * 7919) * 2654435761u);
      return static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
    };
    if (dtype == DType::bf16) {
      auto buf = std::make_unique<Aligned<uint16_t>>(n);
      pool.parallel_for(static_cast<int64_t>(n), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) buf->data[i] = f32_to_bf16(value(i));
      });
      s.bf16.push_back(std::move(buf));
    } else {
      auto buf = std::make_unique<Aligned<float>>(n);
      pool.parallel_for(static_cast<int64_t>(n), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) buf->data[i] = value(i);
      });
      s.f32.push_back(std::move(buf));
    }
  }
  return s;
}

// y[m, n] for a few (m, n) against lanes::dot_reference, bit for bit.
bool spot_check(const MatmulArgs& a) {
  std::vector<float> w(static_cast<size_t>(a.K));
  for (int64_t m : {int64_t{0}, a.M / 2, a.M - 1}) {
    for (int64_t n : {int64_t{0}, a.N / 3, a.N - 1}) {
      for (int64_t k = 0; k < a.K; ++k) {
        w[static_cast<size_t>(k)] =
            a.w_dtype == DType::bf16 ? bf16_to_f32(static_cast<const uint16_t*>(a.w)[n * a.K + k])
                                     : static_cast<const float*>(a.w)[n * a.K + k];
      }
      const float ref = lanes::dot_reference(a.x + m * a.K, w.data(), a.K);
      if (std::memcmp(&ref, &a.y[m * a.N + n], sizeof(float)) != 0) return false;
    }
  }
  return true;
}

void bench_matmul(const Options& opt, const Peaks& peaks, ThreadPool& pool, int& failures) {
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{1024, 1024}, {2048, 5632}, {4096, 4096}};
  const std::vector<int64_t> ms = {1, 8, 64, 256};
  const size_t cold_bytes = opt.quick ? size_t{512} << 20 : size_t{1} << 30;
  for (DType dtype : {DType::f32, DType::bf16}) {
    if (!opt.dtype.empty() && opt.dtype != (dtype == DType::bf16 ? "bf16" : "f32")) continue;
    for (const Shape& sh : shapes) {
      const WeightSet ws = make_weight_set(dtype, sh.N, sh.K, cold_bytes, pool);
      for (int64_t M : ms) {
        if (opt.quick && M == 256 && sh.K * sh.N > 4'000'000) continue;
        std::vector<float> x(static_cast<size_t>(M * sh.K));
        std::mt19937 rng(static_cast<uint32_t>(M + sh.K));
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& v : x) v = dist(rng);
        std::vector<float> y(static_cast<size_t>(M * sh.N));
        MatmulArgs a;
        a.x = x.data();
        a.x_stride = sh.K;
        a.w_dtype = dtype;
        a.w_stride = sh.K;
        a.y = y.data();
        a.y_stride = sh.N;
        a.M = M;
        a.N = sh.N;
        a.K = sh.K;
        a.w = ws.copy(0);
        matmul(a, pool, opt.isa);
        const bool exact = spot_check(a);
        const double flops = 2.0 * static_cast<double>(M * sh.N * sh.K);
        const double budget_flops = opt.quick ? 1e9 : 4e9;  // total work per row, roughly
        const int reps = opt.reps > 0 ? opt.reps
                                      : std::clamp(static_cast<int>(budget_flops / flops),
                                                   opt.quick ? 3 : 5, opt.quick ? 9 : 31);
        const double ms_call = time_ms(reps, [&](int r) {
          a.w = ws.copy(static_cast<size_t>(r) % ws.copies());
          matmul(a, pool, opt.isa);
        });
        Row row;
        row.kernel = "matmul";
        row.dtype = std::string(dtype_name(dtype));
        row.M = M;
        row.K = sh.K;
        row.N = sh.N;
        row.ms = ms_call;
        row.gflops = flops / (ms_call * 1e-3) / 1e9;
        row.pct_fma = peaks.fma_all > 0 ? 100.0 * row.gflops / peaks.fma_all : 0;
        if (M == 1) {
          row.gbs = static_cast<double>(ws.bytes()) / (ms_call * 1e-3) / 1e9;
          row.pct_bw = peaks.bw_all > 0 ? 100.0 * row.gbs / peaks.bw_all : 0;
        }
        // Targets: decode on a matrix much larger than the caches; batches of 64 or more.
        bool met = true;
        if (M == 1 && ws.bytes() >= (size_t{32} << 20)) {
          row.target = ">=70% BW";
          met = row.pct_bw >= 70.0;
        } else if (M >= 64) {
          row.target = ">=60% FMA";
          met = row.pct_fma >= 60.0;
        }
        row.status = !exact ? "WRONG BITS" : row.target.empty() ? "" : met ? "met" : "NOT MET";
        if (!exact) ++failures;
        print_row(row);
      }
    }
  }
}

// ---- block-quantized matmul (kernels/quant.h) ---------------------------------------------------

// Copies of an [N, K] matrix of random blocks (random bytes, moderate f16 scales) in format t.
std::vector<std::vector<uint8_t>> make_block_copies(DType t, int64_t N, int64_t K,
                                                    size_t bytes_total) {
  const int64_t row_bytes = quant::bytes_for(t, K);
  const size_t bytes = static_cast<size_t>(N * row_bytes);
  const size_t copies = std::max<size_t>(1, (bytes_total + bytes - 1) / bytes);
  // The f16 scales (d, then m or dmin) of Q4_1 and Q4_K blocks lie at bytes 0 and 2.
  const int64_t block_bytes = quant::block_bytes(t);
  std::vector<std::vector<uint8_t>> out(copies);
  std::mt19937 rng(11);
  for (auto& c : out) {
    c.resize(bytes);
    for (uint8_t& b : c) b = static_cast<uint8_t>(rng());
    for (size_t at = 0; at < bytes; at += static_cast<size_t>(block_bytes)) {
      const uint16_t d = static_cast<uint16_t>((8u << 10) | (rng() & 0x3ff));  // ~2^-7
      const uint16_t m = static_cast<uint16_t>(0x8000u | (6u << 10) | (rng() & 0x3ff));
      std::memcpy(&c[at], &d, 2);
      std::memcpy(&c[at + 2], &m, 2);
    }
  }
  return out;
}

// y[m, n] for a few (m, n) against lanes::dot_reference of the dequantized row, bit for bit.
bool spot_check_blocks(const MatmulArgs& a) {
  std::vector<float> w(static_cast<size_t>(a.K));
  const int64_t row_bytes = quant::bytes_for(a.w_dtype, a.K);
  for (int64_t m : {int64_t{0}, a.M / 2, a.M - 1}) {
    for (int64_t n : {int64_t{0}, a.N / 3, a.N - 1}) {
      quant::dequantize_row(a.w_dtype, static_cast<const uint8_t*>(a.w) + n * row_bytes, a.K,
                            w.data());
      const float ref = lanes::dot_reference(a.x + m * a.K, w.data(), a.K);
      if (std::memcmp(&ref, &a.y[m * a.N + n], sizeof(float)) != 0) return false;
    }
  }
  return true;
}

// Q4_K (256-weight super-blocks, dequantized into an L1 buffer) against Q4_1 (32-weight blocks,
// dequantized in registers) on the same shapes; then the Q4_K / Q4_1 time ratio of each row.
void bench_quant_matmul(const Options& opt, const Peaks& peaks, ThreadPool& pool, int& failures) {
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{2048, 5632}, {4096, 4096}};
  const std::vector<int64_t> ms = {1, 8, 64};
  const size_t cold_bytes = opt.quick ? size_t{256} << 20 : size_t{512} << 20;
  struct Timed {
    int64_t K, N, M;
    double ms;
  };
  std::vector<Timed> q41, q4k;
  for (DType dtype : {DType::q4_1, DType::q4_k}) {
    if (!opt.dtype.empty() && opt.dtype != (dtype == DType::q4_1 ? "q4_1" : "q4_k")) continue;
    for (const Shape& sh : shapes) {
      const auto copies = make_block_copies(dtype, sh.N, sh.K, cold_bytes);
      const size_t weight_bytes = copies[0].size();
      for (int64_t M : ms) {
        std::vector<float> x(static_cast<size_t>(M * sh.K));
        std::mt19937 rng(static_cast<uint32_t>(M + sh.K));
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& v : x) v = dist(rng);
        std::vector<float> y(static_cast<size_t>(M * sh.N));
        MatmulArgs a;
        a.x = x.data();
        a.w_dtype = dtype;
        a.y = y.data();
        a.M = M;
        a.N = sh.N;
        a.K = sh.K;
        a.w = copies[0].data();
        matmul(a, pool, opt.isa);
        const bool exact = spot_check_blocks(a);
        const double flops = 2.0 * static_cast<double>(M * sh.N * sh.K);
        const double budget_flops = opt.quick ? 1e9 : 4e9;
        const int reps = opt.reps > 0 ? opt.reps
                                      : std::clamp(static_cast<int>(budget_flops / flops),
                                                   opt.quick ? 3 : 5, opt.quick ? 9 : 31);
        const double ms_call = time_ms(reps, [&](int r) {
          a.w = copies[static_cast<size_t>(r) % copies.size()].data();
          matmul(a, pool, opt.isa);
        });
        Row row;
        row.kernel = "qmatmul";
        row.dtype = std::string(dtype_name(dtype));
        row.M = M;
        row.K = sh.K;
        row.N = sh.N;
        row.ms = ms_call;
        row.gflops = flops / (ms_call * 1e-3) / 1e9;
        row.pct_fma = peaks.fma_all > 0 ? 100.0 * row.gflops / peaks.fma_all : 0;
        if (M == 1) {
          row.gbs = static_cast<double>(weight_bytes) / (ms_call * 1e-3) / 1e9;
          row.pct_bw = peaks.bw_all > 0 ? 100.0 * row.gbs / peaks.bw_all : 0;
        }
        row.status = exact ? "" : "WRONG BITS";
        if (!exact) ++failures;
        print_row(row);
        (dtype == DType::q4_1 ? q41 : q4k).push_back({sh.K, sh.N, M, ms_call});
      }
    }
  }
  if (q41.size() == q4k.size()) {
    for (size_t i = 0; i < q41.size(); ++i) {
      std::printf("qmatmul Q4_K vs Q4_1  M=%-4lld K=%-5lld N=%-5lld  time ratio %.2f\n",
                  static_cast<long long>(q41[i].M), static_cast<long long>(q41[i].K),
                  static_cast<long long>(q41[i].N), q4k[i].ms / q41[i].ms);
    }
  }
}

// ---- row kernels (kernels/rows.h) --------------------------------------------------------------

// Memory-bound rows: GB/s counts bytes read plus bytes written, against the read bandwidth.
void bench_rows(const Options& opt, const Peaks& peaks, ThreadPool& pool) {
  const int64_t M = opt.quick ? 64 : 256;
  for (int64_t D : {int64_t{4096}, int64_t{32000}}) {
    std::vector<float> x(static_cast<size_t>(M * D)), w(static_cast<size_t>(D), 1.0f);
    std::vector<float> out(x.size());
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
    for (float& v : x) v = dist(rng);
    const int reps = opt.reps > 0 ? opt.reps : opt.quick ? 5 : 21;
    for (const char* name : {"rmsnorm", "log_softmax"}) {
      const bool norm = std::strcmp(name, "rmsnorm") == 0;
      const double ms_call = time_ms(reps, [&](int) {
        if (norm) {
          rmsnorm(x.data(), D, w.data(), 1e-5f, out.data(), D, M, D, pool);
        } else {
          log_softmax(x.data(), D, out.data(), D, M, D, pool);
        }
      });
      Row row;
      row.kernel = name;
      row.dtype = "f32";
      row.M = M;
      row.N = D;
      row.ms = ms_call;
      row.gbs = 2.0 * static_cast<double>(M * D) * sizeof(float) / (ms_call * 1e-3) / 1e9;
      row.pct_bw = peaks.bw_all > 0 ? 100.0 * row.gbs / peaks.bw_all : 0;
      print_row(row);
    }
  }
}

// Slots for the other kernel families, to be filled as they land:
//   bench_attention  (kernels/attention.h): decode and prefill over a paged cache, GB/s of KV.

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

Options parse(int argc, char** argv) {
  Options opt;
  opt.isa = active_isa();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      check(i + 1 < argc, "missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--threads") {
      opt.threads = std::stoi(value());
    } else if (arg == "--isa") {
      opt.isa = parse_isa(value());
      check(isa_supported(opt.isa),
            "--isa " + std::string(isa_name(opt.isa)) + " is not supported by this CPU");
    } else if (arg == "--quick") {
      opt.quick = true;
    } else if (arg == "--reps") {
      opt.reps = std::stoi(value());
    } else if (arg == "--dtype") {
      opt.dtype = value();
      check(opt.dtype == "f32" || opt.dtype == "bf16" || opt.dtype == "q4_1" || opt.dtype == "q4_k",
            "--dtype: expected f32, bf16, q4_1 or q4_k");
    } else if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: kernel_bench [--threads N] [--isa scalar|avx2|avx512] [--quick] "
          "[--reps R] [--dtype f32|bf16|q4_1|q4_k]\n");
      std::exit(0);
    } else {
      throw Error("unknown argument '" + arg +
                  "': expected --threads, --isa, --quick, --reps, --dtype");
    }
  }
  if (opt.threads <= 0)
    opt.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return opt;
}

int run(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  ThreadPool pool(opt.threads);
  std::printf("cpu: %s, %u hardware threads; bench threads %d, isa %s%s\n", cpu_model().c_str(),
              std::thread::hardware_concurrency(), opt.threads,
              std::string(isa_name(opt.isa)).c_str(), opt.quick ? " (quick)" : "");
  const Peaks peaks = measure_peaks(opt, pool);
  const char* peak_isa = opt.isa == Isa::avx512 ? "avx512 zmm" : "avx2 ymm";
  std::printf("FMA peak (%s): %.1f GFLOP/s 1 thread, %.1f GFLOP/s %d threads\n", peak_isa,
              peaks.fma_1t, peaks.fma_all, opt.threads);
  std::printf("read bandwidth: %.1f GB/s 1 thread, %.1f GB/s %d threads\n\n", peaks.bw_1t,
              peaks.bw_all, opt.threads);
  print_header();
  int failures = 0;
  bench_matmul(opt, peaks, pool, failures);
  bench_quant_matmul(opt, peaks, pool, failures);
  bench_rows(opt, peaks, pool);
  // The peak again: a machine shared with other work can change speed while the rows run.
  const Isa simd = opt.isa == Isa::avx512 ? Isa::avx512 : Isa::avx2;
  if (isa_supported(simd)) {
    std::printf("\nFMA peak again at the end: %.1f GFLOP/s %d threads\n",
                fma_peak(simd, pool, pool.size(), 3), pool.size());
  }
  if (failures > 0) {
    std::printf("\n%d rows gave bits different from the scalar reference\n", failures);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace bx

int main(int argc, char** argv) {
  try {
    return bx::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_bench: %s\n", e.what());
    return 2;
  }
}

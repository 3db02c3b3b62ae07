#include "core/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace bx {
namespace {

std::atomic<int> g_forced_isa{-1};

// F16C is CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c").
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & (1u << 29)) != 0;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

// Queried once: CPUID traps to the hypervisor in a VM, and kernels ask on every call.
bool isa_supported(Isa isa) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           cpu_has_f16c();
  static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") &&
                             __builtin_cpu_supports("avx512dq");
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return avx2;
    case Isa::avx512: return avx512;
  }
  return false;
}

Isa best_supported_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

Isa parse_isa(std::string_view name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw Error("unknown ISA '" + std::string(name) + "': expected scalar, avx2 or avx512");
}

void set_isa(Isa isa) {
  check(isa_supported(isa),
        "ISA " + std::string(isa_name(isa)) + " is not supported by this CPU");
  g_forced_isa.store(static_cast<int>(isa));
}

Isa active_isa() {
  const int forced = g_forced_isa.load();
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa from_env = [] {
    const char* env = std::getenv("BITEXACT_ISA");
    if (env == nullptr || *env == '\0') return best_supported_isa();
    const Isa isa = parse_isa(env);
    check(isa_supported(isa),
          "BITEXACT_ISA=" + std::string(env) + " is not supported by this CPU");
    return isa;
  }();
  return from_env;
}

}  // namespace bx

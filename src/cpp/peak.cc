#include "peak.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "affinity.h"
#include "timer.h"

namespace convbench {
namespace {

// 16 independent accumulators cover FMA latency x ports on current x86 cores (4 cycles x 2 ports
// needs 8; Zen 5 and Sapphire Rapids both saturate well below 16).
constexpr int kChains = 16;
constexpr std::int64_t kInner = 1 << 12;

__attribute__((target("avx512f"))) double FmaAvx512(std::int64_t outer) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(1.0f + 1e-7f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t k = 0; k < kInner; ++k) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  // Summed through memory, as in FmaAvx2: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized
  // inside its own header. The sum keeps the loop from being optimised away.
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
}

__attribute__((target("avx2,fma"))) double FmaAvx2(std::int64_t outer) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(1.0f + 1e-7f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t k = 0; k < kInner; ++k) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
}

double FmaScalar(std::int64_t outer) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = 1.0f + 1e-7f * i;
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t k = 0; k < kInner; ++k) {
      for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
    }
  }
  double r = 0;
  for (float v : acc) r += v;
  return r;
}

int Lanes(const std::string& isa) { return isa == "avx512f" ? 16 : isa == "avx2+fma" ? 8 : 1; }

double Run(const std::string& isa, std::int64_t outer) {
  if (isa == "avx512f") return FmaAvx512(outer);
  if (isa == "avx2+fma") return FmaAvx2(outer);
  return FmaScalar(outer);
}

}  // namespace

std::string PeakIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
  return "scalar";
}

PeakResult MeasurePeak(const std::vector<int>& cpus, double seconds, int repeats) {
  if (cpus.empty()) throw std::invalid_argument("the peak probe needs at least one CPU");
  if (!(seconds > 0) || repeats < 1) throw std::invalid_argument("bad peak probe duration");
  const std::string isa = PeakIsa();
  const double flops_per_outer = 2.0 * kChains * Lanes(isa) * static_cast<double>(kInner);

  // Size the work on one thread so that each repeat lasts about `seconds`.
  std::int64_t outer = 1;
  for (;;) {
    const auto t0 = WallClock::now();
    volatile double sink = Run(isa, outer);
    (void)sink;
    const double dt = SecondsBetween(t0, WallClock::now());
    if (dt >= seconds / 8 || outer > (std::int64_t{1} << 40)) {
      outer = std::max<std::int64_t>(1, static_cast<std::int64_t>(outer * seconds / std::max(dt, 1e-9)));
      break;
    }
    outer *= 4;
  }

  PeakResult best;
  best.isa = isa;
  best.threads = static_cast<int>(cpus.size());
  for (int r = 0; r < repeats; ++r) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    std::vector<double> sinks(cpus.size());
    for (std::size_t i = 0; i < cpus.size(); ++i) {
      threads.emplace_back([&, i] {
        PinCurrentThread({cpus[i]});
        ready.fetch_add(1);
        while (!go.load()) {
        }
        sinks[i] = Run(isa, outer);
      });
    }
    while (ready.load() < static_cast<int>(cpus.size())) {
    }
    const auto t0 = WallClock::now();
    go = true;
    for (auto& t : threads) t.join();
    const double dt = SecondsBetween(t0, WallClock::now());
    const double gflops = flops_per_outer * static_cast<double>(outer) * cpus.size() / dt / 1e9;
    if (gflops > best.gflops) {
      best.gflops = gflops;
      best.seconds = dt;
    }
  }
  return best;
}

}  // namespace convbench

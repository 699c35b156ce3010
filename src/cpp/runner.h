// The timing loop: warm-up, calibration so that one sample lasts at least `min_sample_s`, then
// `samples` samples. Per sample it reads the wall clock, the thread CPU clock and the process CPU
// clock once each, and divides by the iteration count, so a clock read never sits inside the
// per-call path. Header-only so the body is inlined: the loop's own cost is what the empty-kernel
// overhead figure reports.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "affinity.h"
#include "timer.h"

namespace convbench {

struct RunConfig {
  double warmup_s = 0.05;      // run the body at least this long before calibrating
  std::int64_t warmup_iters = 10;  // ... and at least this many times (a slow call needs both)
  double min_sample_s = 0.01;  // each sample lasts at least this long
  int samples = 10;
  std::int64_t max_iters = std::int64_t{1} << 30;  // cap per sample, for an empty body
};

struct Measurement {
  std::int64_t iters_per_sample = 0;
  std::int64_t warmup_iters = 0;
  std::vector<double> wall_s;         // per call, one entry per sample
  std::vector<double> thread_cpu_s;   // per call
  std::vector<double> process_cpu_s;  // per call
  int cpu_before = -1;                // CPU of the timing thread before and after the samples
  int cpu_after = -1;
};

inline void ValidateConfig(const RunConfig& c) {
  if (c.samples < 1) throw std::invalid_argument("samples must be at least 1");
  if (!(c.min_sample_s > 0) || !std::isfinite(c.min_sample_s)) {
    throw std::invalid_argument("min_sample_s must be a positive number of seconds");
  }
  if (!(c.warmup_s >= 0) || !std::isfinite(c.warmup_s)) {
    throw std::invalid_argument("warmup_s must be a non-negative number of seconds");
  }
  if (c.max_iters < 1) throw std::invalid_argument("max_iters must be at least 1");
  if (c.warmup_iters < 0) throw std::invalid_argument("warmup_iters must not be negative");
}

// `run_n(n)` makes n calls. It is the only part that differs between paths: a C++ loop around a
// packed call (native), a Cython loop, or a Python loop around a Python-level call; the warm-up,
// calibration, clocks and statistics are this one function for all of them.
template <class RunN>
double TimeIterations(RunN& run_n, std::int64_t iters) {
  const auto t0 = WallClock::now();
  run_n(iters);
  return SecondsBetween(t0, WallClock::now());
}

// Exceptions thrown by `run_n` propagate to the caller.
template <class RunN>
Measurement TimeLoopN(RunN&& run_n, const RunConfig& config) {
  ValidateConfig(config);
  Measurement m;
  // Warm-up, by count and by time: caches, page faults, lazily created thread pools, and a
  // framework's first runs (TF needs ~10 at 2 threads before it settles, whatever a call costs).
  const auto warm_start = WallClock::now();
  do {
    run_n(std::int64_t{1});
    ++m.warmup_iters;
  } while (m.warmup_iters < config.warmup_iters ||
           SecondsBetween(warm_start, WallClock::now()) < config.warmup_s);

  // Calibration, as google/benchmark does it: grow the count until one run fills a sample.
  std::int64_t iters = 1;
  double elapsed = 0;
  for (;;) {
    elapsed = TimeIterations(run_n, iters);
    if (elapsed >= config.min_sample_s || iters >= config.max_iters) break;
    const double scale = elapsed > 0 ? 1.4 * config.min_sample_s / elapsed : 10.0;
    const auto next =
        static_cast<std::int64_t>(static_cast<double>(iters) * std::clamp(scale, 2.0, 10.0));
    iters = std::min(std::max(next, iters + 1), config.max_iters);
  }
  // The count that just reached the minimum could fall short of it in a sample by noise alone:
  // 10% of headroom, so no sample is shorter than the minimum (unless max_iters caps it).
  if (elapsed > 0 && elapsed < 1.1 * config.min_sample_s) {
    const double want = std::ceil(static_cast<double>(iters) * 1.1 * config.min_sample_s / elapsed);
    iters = std::min(std::max(static_cast<std::int64_t>(want), iters), config.max_iters);
  }
  m.iters_per_sample = iters;

  const double n = static_cast<double>(iters);
  m.wall_s.reserve(config.samples);
  m.thread_cpu_s.reserve(config.samples);
  m.process_cpu_s.reserve(config.samples);
  m.cpu_before = CurrentCpu();
  for (int s = 0; s < config.samples; ++s) {
    const double tc0 = ThreadCpuSeconds();
    const double pc0 = ProcessCpuSeconds();
    const double wall = TimeIterations(run_n, iters);
    const double tc1 = ThreadCpuSeconds();
    const double pc1 = ProcessCpuSeconds();
    m.wall_s.push_back(wall / n);
    m.thread_cpu_s.push_back((tc1 - tc0) / n);
    m.process_cpu_s.push_back((pc1 - pc0) / n);
  }
  m.cpu_after = CurrentCpu();
  return m;
}

// One call per `body()`; the loop around it is inlined C++.
template <class Body>
Measurement TimeLoop(Body&& body, const RunConfig& config) {
  return TimeLoopN(
      [&](std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) body();
      },
      config);
}

}  // namespace convbench

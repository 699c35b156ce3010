// Clocks for the timing loop. The wall clock is read twice per sample, never per call, so its own
// cost is amortised over the calibrated iteration count.
#pragma once

#include <chrono>
#include <cstdint>

namespace convbench {

using WallClock = std::chrono::steady_clock;

inline double SecondsBetween(WallClock::time_point a, WallClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU time consumed by the calling thread only: the share of work that stayed on the timing thread.
double ThreadCpuSeconds();
// CPU time consumed by every thread of the process: includes worker pools (TVM, TF intra-op).
double ProcessCpuSeconds();

}  // namespace convbench

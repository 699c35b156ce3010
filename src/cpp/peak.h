// The machine's fp32 FMA roof: what a conv kernel's GFLOP/s is a share of. Measured, never typed.
#pragma once

#include <string>
#include <vector>

namespace convbench {

struct PeakResult {
  std::string isa;  // "avx512f", "avx2+fma" or "scalar": the widest this CPU runs
  int threads = 0;
  double gflops = 0;       // all threads together, best of the repeats
  double seconds = 0;      // wall time of the best repeat
};

// Runs a register-resident FMA loop (independent accumulators, no memory traffic) on one thread
// per entry of `cpus`, each pinned to its CPU, for about `seconds`; best of `repeats`.
PeakResult MeasurePeak(const std::vector<int>& cpus, double seconds = 0.2, int repeats = 3);

// The vector ISA MeasurePeak will use on this CPU.
std::string PeakIsa();

}  // namespace convbench

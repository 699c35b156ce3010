// CPU pinning for the timing thread, and read-back of what the kernel actually applied, so a
// pinning request that silently failed is visible instead of trusted.
#pragma once

#include <map>
#include <vector>

namespace convbench {

// CPUs the calling thread may run on.
std::vector<int> CurrentThreadAffinity();
// Restricts the calling thread to `cpus`. Throws std::system_error naming the CPUs on failure.
void PinCurrentThread(const std::vector<int>& cpus);
// Affinity of every thread of this process, keyed by kernel thread id (read from /proc).
std::map<int, std::vector<int>> ProcessThreadAffinities();
// The CPU the calling thread is running on right now.
int CurrentCpu();
// Kernel thread id of the calling thread.
int CurrentThreadId();

}  // namespace convbench

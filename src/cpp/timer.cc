#include "timer.h"

#include <time.h>

#include <system_error>

namespace convbench {
namespace {

double ReadClock(clockid_t id) {
  timespec ts{};
  if (clock_gettime(id, &ts) != 0) {
    throw std::system_error(errno, std::generic_category(), "clock_gettime");
  }
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

double ThreadCpuSeconds() { return ReadClock(CLOCK_THREAD_CPUTIME_ID); }
double ProcessCpuSeconds() { return ReadClock(CLOCK_PROCESS_CPUTIME_ID); }

}  // namespace convbench

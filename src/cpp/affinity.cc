#include "affinity.h"

#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>

namespace convbench {
namespace {

std::vector<int> FromSet(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

std::string Join(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::vector<int> AffinityOf(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "sched_getaffinity(tid " + std::to_string(tid) + ")");
  }
  return FromSet(set);
}

}  // namespace

int CurrentThreadId() { return static_cast<int>(syscall(SYS_gettid)); }

std::vector<int> CurrentThreadAffinity() { return AffinityOf(0); }

void PinCurrentThread(const std::vector<int>& cpus) {
  if (cpus.empty()) throw std::invalid_argument("cannot pin a thread to an empty CPU list");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) {
      throw std::invalid_argument("CPU id " + std::to_string(c) + " is out of range");
    }
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot pin the timing thread to CPUs [" + Join(cpus) + "]");
  }
}

std::map<int, std::vector<int>> ProcessThreadAffinities() {
  std::map<int, std::vector<int>> result;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) throw std::system_error(errno, std::generic_category(), "/proc/self/task");
  while (dirent* entry = readdir(dir)) {
    const int tid = std::atoi(entry->d_name);
    if (tid <= 0) continue;
    try {
      result[tid] = AffinityOf(tid);
    } catch (const std::system_error&) {
      // The thread exited between readdir and the query: nothing to report for it.
    }
  }
  closedir(dir);
  return result;
}

int CurrentCpu() { return sched_getcpu(); }

}  // namespace convbench

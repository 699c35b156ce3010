// An exported TVM kernel (.so) loaded through tvm-ffi, with the argument checks that keep a wrong
// array from reaching generated code.
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdint>
#include <string>
#include <vector>

#include "array_view.h"
#include "runner.h"

namespace convbench {

// Loads libtvm_runtime.so with RTLD_GLOBAL: generated parallel code calls TVMBackendParallelLaunch
// and friends, which resolve against the process's global symbols. Idempotent; throws
// std::runtime_error with dlerror()'s text on failure.
void LoadTvmRuntime(const std::string& path);
bool TvmRuntimeLoaded();

// Sizes TVM's thread pool of the calling thread to `cpus.size()` workers and binds worker i to
// cpus[i] (worker 0 is the calling thread). A CPU may repeat: that is how oversubscription is run.
void ConfigureTvmThreadPool(const std::vector<int>& cpus);
// The pool size TVM reports for the calling thread.
int TvmNumThreads();

// TVM's generated code assumes every buffer starts on this boundary (its kAllocAlignment) and
// uses aligned vector loads: a misaligned array would crash it, so Check refuses one.
constexpr std::size_t kTvmAlignment = 64;

class TvmKernel {
 public:
  // Throws std::runtime_error naming the path when the file is missing, is not a TVM module, or
  // lacks `entry`.
  TvmKernel(const std::string& path, std::vector<ArgSpec> specs, const std::string& entry = "main");

  const std::string& path() const { return path_; }
  const std::vector<ArgSpec>& specs() const { return specs_; }
  // The packed function's tvm-ffi handle, for callers that drive it through the C ABI themselves
  // (the Cython loop). Valid while this kernel lives.
  const void* function_handle() const { return function_.get(); }
  const tvm::ffi::Function& function() const { return function_; }

  // Throws std::invalid_argument naming the argument and what is wrong with it.
  void Check(const std::vector<ArrayView>& args) const;
  // Check, then one call. Kernel-side errors come back as std::runtime_error.
  void Call(const std::vector<ArrayView>& args) const;
  // Check, then the timing loop around the bare packed call.
  Measurement Time(const std::vector<ArrayView>& args, const RunConfig& config) const;
  // The same loop over several sets of arrays, call i on set i % sets.size(): with enough sets
  // (more bytes than the last-level cache holds) every call starts with cold caches.
  Measurement TimeRotating(const std::vector<std::vector<ArrayView>>& sets,
                           const RunConfig& config) const;

 private:
  std::vector<DLTensor> ToDLTensors(const std::vector<ArrayView>& args) const;

  std::string path_;
  std::vector<ArgSpec> specs_;
  tvm::ffi::Module module_;
  tvm::ffi::Function function_;
};

}  // namespace convbench

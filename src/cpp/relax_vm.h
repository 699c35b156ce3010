// An exported Relax VM executable (.so from tvm.compile(relax_mod, target).export_library) run
// through the Relax virtual machine, timed with the same loop as a single kernel.
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <string>
#include <vector>

#include "runner.h"
#include "tvm_kernel.h"

namespace convbench {

// Where one run of a Relax VM entry spends its time: the VM calls an instrument before and after
// every call instruction (compiled functions and its builtins alike), and the instrument reads the
// wall clock. Runs alternate with uninstrumented ones, so the instrument's own cost is measured
// against the same call under the same conditions.
struct VmProfile {
  std::vector<std::string> symbols;         // the calls of one run, in order
  std::vector<std::vector<double>> call_s;  // per run, per call: seconds from its start to its end
  std::vector<std::vector<double>> gap_s;   // per run, per call: from the previous call's end (the
                                            // entry's start for the first) to its start
  std::vector<double> tail_s;               // per run: from the last call's end to the return
  std::vector<double> whole_s;              // per run: the instrumented entry call, end to end
  std::vector<double> plain_s;              // per run: an uninstrumented entry call beside it
  std::int64_t warmup_iters = 0;
};

class RelaxVm {
 public:
  // Loads the executable, starts a VM on CPU 0 with the pooled allocator and looks up `entry`.
  // Throws std::runtime_error naming the path when the file is missing, is not a TVM module or
  // not a Relax executable, when the VM cannot start, or naming `entry` when it is absent.
  RelaxVm(const std::string& path, std::vector<ArgSpec> inputs, ArgSpec output,
          const std::string& entry = "main");

  const std::string& path() const { return path_; }
  const std::string& entry() const { return entry_name_; }
  const std::vector<ArgSpec>& inputs() const { return library_.specs(); }
  const ArgSpec& output() const { return output_; }

  // The inputs only. Throws std::invalid_argument naming the argument and what is wrong with it:
  // the checks are TvmKernel's (dtype, shape, C-contiguity, 64-byte alignment), because the VM
  // hands these buffers to generated code unchanged.
  void Check(const std::vector<ArrayView>& inputs) const;
  // Check, then one run; the returned tensor is copied into `output`, which must match the output
  // spec and be writeable (std::invalid_argument otherwise). VM-side errors, and a result that is
  // not one tensor of the output spec, come back as std::runtime_error.
  void Call(const std::vector<ArrayView>& inputs, const ArrayView& output) const;
  // Check, then the timing loop around bare calls of the entry; each result is dropped as it
  // comes back, so its memory returns to the VM's pool before the next call.
  Measurement Time(const std::vector<ArrayView>& inputs, const RunConfig& config) const;
  // Check, then the warm-up of `config`, then at least `min_runs` pairs of runs (and at least as
  // many as fill config.samples samples of config.min_sample_s), each pair an uninstrumented run
  // and an instrumented one, in alternating order. Throws std::runtime_error when a run's calls
  // differ from the first run's.
  VmProfile Profile(const std::vector<ArrayView>& inputs, const RunConfig& config,
                    int min_runs) const;

 private:
  std::vector<tvm::ffi::Tensor> ToTensors(const std::vector<ArrayView>& inputs) const;

  std::string path_;
  std::string entry_name_;
  ArgSpec output_;
  // The library is loaded through a TvmKernel over the input specs, so that Check is exactly
  // TvmKernel::Check; that kernel's function is the executable's `vm_load_executable`.
  TvmKernel library_;
  tvm::ffi::Module vm_;
  tvm::ffi::Function entry_;
};

}  // namespace convbench

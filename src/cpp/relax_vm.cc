#include "relax_vm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/string.h>
#include <utility>

namespace convbench {
namespace {

// TVM's memory allocator kinds, as tvm/runtime/vm.py's VirtualMachine names them.
constexpr int kPooledAllocator = 2;

std::vector<ArgSpec> CheckedInputSpecs(std::vector<ArgSpec> inputs) {
  for (const ArgSpec& s : inputs) {
    if (s.output) {
      throw std::invalid_argument("input '" + s.name +
                                  "' is marked as an output: a Relax VM returns its output");
    }
  }
  return inputs;
}

ArgSpec CheckedOutputSpec(ArgSpec output) {
  if (!output.output) {
    throw std::invalid_argument("the output spec '" + output.name + "' is not marked as an output");
  }
  return output;
}

TvmKernel LoadLibrary(const std::string& path, std::vector<ArgSpec> inputs) {
  try {
    // Every exported Relax executable serves vm_load_executable (from its imported executable
    // module); a single-kernel .so does not, which is how one is told apart here.
    return TvmKernel(path, std::move(inputs), "vm_load_executable");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("cannot load Relax VM executable: ") + e.what());
  }
}

tvm::ffi::Module StartVm(const TvmKernel& library) {
  const std::string& path = library.path();
  try {
    auto vm = library.function()().cast<tvm::ffi::Module>();
    auto init = vm->GetFunction("vm_initialization", /*query_imports=*/false);
    if (!init.has_value()) {
      throw std::runtime_error("the VM of '" + path + "' has no vm_initialization");
    }
    // As VirtualMachine._setup_device does it for tvm.cpu(): one (device type, device id,
    // allocator) triple per device, and the CPU must be last because the VM runs shape functions
    // there; with the CPU as the only device it is the one triple.
    (*init)(static_cast<int>(kDLCPU), 0, kPooledAllocator);
    return vm;
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("cannot start the Relax VM of '" + path + "': " + e.message());
  }
}

tvm::ffi::Function GetVmEntry(const tvm::ffi::Module& vm, const std::string& path,
                              const std::string& entry) {
  tvm::ffi::Optional<tvm::ffi::Function> f;
  try {
    f = vm->GetFunction(entry, /*query_imports=*/false);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("Relax VM executable '" + path + "' has no function '" + entry +
                             "': " + e.message());
  }
  if (!f.has_value()) {
    throw std::runtime_error("Relax VM executable '" + path + "' has no function '" + entry + "'");
  }
  return *f;
}

// The output is only a memcpy target, so unlike the inputs it need not be aligned.
void CheckOutput(const ArgSpec& s, const ArrayView& a) {
  const std::string who = "output '" + s.name + "'";
  CheckArray(who, s, a);
  if (!a.writeable) throw std::invalid_argument(who + ": the output array is read-only");
}

// Lends the caller's buffer to a tvm::ffi::Tensor without copying: "allocating" returns the
// buffer and freeing does nothing, so the Tensor owns only its own header (shape and compact
// strides are copied into it). The buffer must outlive every use the VM makes of the Tensor,
// which ends when the call returns.
struct BorrowedBuffer {
  void* data;
  void AllocData(DLTensor* t) { t->data = data; }
  void FreeData(DLTensor*) {}
};

// The VM's result: one tensor, bare or as the only field of a tuple.
tvm::ffi::Tensor SingleTensor(const tvm::ffi::Any& result, const std::string& where) {
  if (auto t = result.as<tvm::ffi::Tensor>()) return *t;
  if (auto tuple = result.as<tvm::ffi::Array<tvm::ffi::Any>>()) {
    if (tuple->size() == 1) {
      if (auto t = (*tuple)[0].as<tvm::ffi::Tensor>()) return *t;
    }
    throw std::runtime_error(where + " returned a tuple of " + std::to_string(tuple->size()) +
                             " values; RelaxVm handles a single tensor result");
  }
  throw std::runtime_error(where + " returned a " + result.GetTypeKey() +
                           ", not a tensor; RelaxVm handles a single tensor result");
}

// What the instrument writes: a clock stamp at every call's start and end, and, on the run that
// records them, the called symbols.
struct Stamps {
  std::vector<WallClock::time_point> at;
  std::vector<std::string>* symbols = nullptr;
};

// The VM's instrument: (func, func_symbol, before_run, ret_value, *args) -> VMInstrumentReturnKind.
// The clock is read first, so what follows the read in a "before" call counts to the call and
// what precedes it in an "after" call counts to the call too: a few nanoseconds either way.
tvm::ffi::Function MakeInstrument(const std::shared_ptr<Stamps>& stamps) {
  return tvm::ffi::Function::FromPacked([stamps](tvm::ffi::PackedArgs args, tvm::ffi::Any* rv) {
    stamps->at.push_back(WallClock::now());
    if (stamps->symbols != nullptr && args.size() >= 3 && args[2].cast<bool>()) {
      stamps->symbols->push_back(std::string(args[1].cast<tvm::ffi::String>()));
    }
    *rv = 0;  // VMInstrumentReturnKind.NO_OP: run the call
  });
}

// Sets the VM's instrument for its lifetime and clears it after, also when a run throws.
class InstrumentScope {
 public:
  InstrumentScope(const tvm::ffi::Function& set, const tvm::ffi::Function& instrument) : set_(set) {
    set_(instrument);
  }
  ~InstrumentScope() { set_(tvm::ffi::Any()); }
  InstrumentScope(const InstrumentScope&) = delete;
  InstrumentScope& operator=(const InstrumentScope&) = delete;

 private:
  const tvm::ffi::Function& set_;
};

}  // namespace

RelaxVm::RelaxVm(const std::string& path, std::vector<ArgSpec> inputs, ArgSpec output,
                 const std::string& entry)
    : path_(path),
      entry_name_(entry),
      output_(CheckedOutputSpec(std::move(output))),
      library_(LoadLibrary(path, CheckedInputSpecs(std::move(inputs)))),
      vm_(StartVm(library_)),
      entry_(GetVmEntry(vm_, path, entry)) {}

void RelaxVm::Check(const std::vector<ArrayView>& inputs) const { library_.Check(inputs); }

std::vector<tvm::ffi::Tensor> RelaxVm::ToTensors(const std::vector<ArrayView>& inputs) const {
  std::vector<tvm::ffi::Tensor> tensors;
  tensors.reserve(inputs.size());
  for (const ArrayView& a : inputs) {
    tensors.push_back(tvm::ffi::Tensor::FromNDAlloc(
        BorrowedBuffer{a.data}, tvm::ffi::ShapeView(a.shape.data(), a.shape.size()), a.dtype,
        DLDevice{kDLCPU, 0}));
  }
  return tensors;
}

void RelaxVm::Call(const std::vector<ArrayView>& inputs, const ArrayView& output) const {
  Check(inputs);
  CheckOutput(output_, output);
  const std::vector<tvm::ffi::Tensor> tensors = ToTensors(inputs);
  std::vector<tvm::ffi::AnyView> packed(tensors.begin(), tensors.end());
  const std::string where = "Relax VM '" + path_ + "' function '" + entry_name_ + "'";
  tvm::ffi::Any result;
  try {
    entry_.CallPacked(packed.data(), static_cast<int32_t>(packed.size()), &result);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error(where + " failed: " + e.message());
  }
  const tvm::ffi::Tensor t = SingleTensor(result, where);
  const std::vector<std::int64_t> shape(t.shape().begin(), t.shape().end());
  if (!SameDType(t.dtype(), output_.dtype)) {
    throw std::runtime_error(where + " returned dtype " + DTypeToString(t.dtype()) +
                             ", the output spec '" + output_.name + "' says " +
                             DTypeToString(output_.dtype));
  }
  if (shape != output_.shape) {
    throw std::runtime_error(where + " returned shape " + ShapeToString(shape) +
                             ", the output spec '" + output_.name + "' says " +
                             ShapeToString(output_.shape));
  }
  if (t.device().device_type != kDLCPU || !t.IsContiguous()) {
    throw std::runtime_error(where + " returned a tensor that is not contiguous host memory");
  }
  const auto* src = static_cast<const char*>(t.data_ptr()) + t.byte_offset();
  // memmove, not memcpy: an entry that returns its argument hands back the caller's own buffer,
  // and nothing stops the caller from passing that same array as the output.
  std::memmove(output.data, src, tvm::ffi::GetDataSize(t));
}

Measurement RelaxVm::Time(const std::vector<ArrayView>& inputs, const RunConfig& config) const {
  Check(inputs);
  // One set of wrappers for the whole loop: building them is a heap allocation per input that
  // the single-kernel path does not pay per call either.
  const std::vector<tvm::ffi::Tensor> tensors = ToTensors(inputs);
  std::vector<tvm::ffi::AnyView> packed(tensors.begin(), tensors.end());
  const auto num_args = static_cast<int32_t>(packed.size());
  const tvm::ffi::AnyView* argv = packed.data();
  const tvm::ffi::Function& f = entry_;
  try {
    return TimeLoop(
        [&] {
          // A fresh Any per call: a packed call through the C ABI writes its result into the slot
          // without releasing what was there, so reusing one would leak every returned tensor.
          tvm::ffi::Any result;
          f.CallPacked(argv, num_args, &result);
        },
        config);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("Relax VM '" + path_ + "' function '" + entry_name_ +
                             "' failed while timed: " + e.message());
  }
}

VmProfile RelaxVm::Profile(const std::vector<ArrayView>& inputs, const RunConfig& config,
                           int min_runs) const {
  ValidateConfig(config);
  if (min_runs < 1) throw std::invalid_argument("min_runs must be at least 1");
  Check(inputs);
  const std::vector<tvm::ffi::Tensor> tensors = ToTensors(inputs);
  std::vector<tvm::ffi::AnyView> packed(tensors.begin(), tensors.end());
  const auto num_args = static_cast<int32_t>(packed.size());
  const tvm::ffi::AnyView* argv = packed.data();
  const std::string where = "Relax VM '" + path_ + "' function '" + entry_name_ + "'";
  const tvm::ffi::Function set = GetVmEntry(vm_, path_, "set_instrument");
  auto stamps = std::make_shared<Stamps>();
  const tvm::ffi::Function instrument = MakeInstrument(stamps);
  const auto run = [&] {
    tvm::ffi::Any result;
    entry_.CallPacked(argv, num_args, &result);
  };
  VmProfile p;
  std::size_t events = 0;
  // One instrumented run, its stamps checked against the first run's calls; returns its wall time.
  const auto instrumented = [&](bool record) {
    stamps->at.clear();
    stamps->symbols = record ? &p.symbols : nullptr;
    WallClock::time_point t0, t1;
    {
      InstrumentScope scope(set, instrument);
      t0 = WallClock::now();
      run();
      t1 = WallClock::now();
    }
    stamps->symbols = nullptr;
    if (record) {
      events = stamps->at.size();
      if (events != 2 * p.symbols.size()) {
        throw std::runtime_error(where + ": the instrument saw " + std::to_string(events) +
                                 " stamps for " + std::to_string(p.symbols.size()) + " calls");
      }
      stamps->at.reserve(events);
    } else if (stamps->at.size() != events) {
      throw std::runtime_error(where + " made " + std::to_string(stamps->at.size() / 2) +
                               " calls in one run and " + std::to_string(events / 2) +
                               " in its first: the call sequence is not fixed");
    }
    return std::make_pair(t0, t1);
  };
  const auto plain = [&] {
    const auto t0 = WallClock::now();
    run();
    return SecondsBetween(t0, WallClock::now());
  };
  try {
    instrumented(/*record=*/true);
    double last_plain = 0;
    const auto warm_start = WallClock::now();
    do {
      instrumented(false);
      last_plain = plain();
      ++p.warmup_iters;
    } while (p.warmup_iters < config.warmup_iters ||
             SecondsBetween(warm_start, WallClock::now()) < config.warmup_s);
    // as many runs as the timing loop's samples would take, and at least min_runs
    const double fill = last_plain > 0 ? config.samples * config.min_sample_s / last_plain : 1.0;
    const auto runs = static_cast<std::int64_t>(std::min<double>(
        std::max<double>({static_cast<double>(min_runs), static_cast<double>(config.samples),
                          std::ceil(fill)}),
        static_cast<double>(config.max_iters)));
    const std::size_t n = p.symbols.size();
    for (std::int64_t r = 0; r < runs; ++r) {
      // alternated order: neither kind always runs right after the other
      if (r % 2 == 0) p.plain_s.push_back(plain());
      const auto [t0, t1] = instrumented(false);
      if (r % 2 == 1) p.plain_s.push_back(plain());
      const auto& at = stamps->at;
      std::vector<double> calls(n), gaps(n);
      for (std::size_t i = 0; i < n; ++i) {
        calls[i] = SecondsBetween(at[2 * i], at[2 * i + 1]);
        gaps[i] = SecondsBetween(i == 0 ? t0 : at[2 * i - 1], at[2 * i]);
      }
      p.call_s.push_back(std::move(calls));
      p.gap_s.push_back(std::move(gaps));
      p.tail_s.push_back(n ? SecondsBetween(at.back(), t1) : 0.0);
      p.whole_s.push_back(SecondsBetween(t0, t1));
    }
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error(where + " failed while profiled: " + e.message());
  }
  return p;
}

}  // namespace convbench

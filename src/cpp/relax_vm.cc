#include "relax_vm.h"

#include <cstdint>
#include <cstring>
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

}  // namespace convbench

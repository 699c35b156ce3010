#include "tvm_kernel.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/string.h>

namespace convbench {
namespace {

std::atomic<bool> g_runtime_loaded{false};

// The module loaded last, by path and file identity: kernels made one after another from one
// library (a model's per-layer functions, hundreds of them) share one load. A model's library
// embeds its constants, and each load deserializes them again (375 MB, half a second, for the
// stand-in model). One entry only, so nothing is held beyond the latest library.
struct LastModule {
  std::mutex mutex;
  std::string path;
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = -1;
  timespec mtime{};
  std::optional<tvm::ffi::Module> module;
};

LastModule& Last() {
  static auto* last = new LastModule;  // never destroyed: no module freed after TVM at exit
  return *last;
}

tvm::ffi::Module LoadModule(const std::string& path) {
  struct stat st {};
  const bool known = ::stat(path.c_str(), &st) == 0;
  LastModule& last = Last();
  std::lock_guard<std::mutex> lock(last.mutex);
  if (known && last.module.has_value() && last.path == path && last.device == st.st_dev &&
      last.inode == st.st_ino && last.size == st.st_size &&
      last.mtime.tv_sec == st.st_mtim.tv_sec && last.mtime.tv_nsec == st.st_mtim.tv_nsec) {
    return *last.module;
  }
  try {
    tvm::ffi::Module module = tvm::ffi::Module::LoadFromFile(path);
    if (known) {
      last.path = path;
      last.device = st.st_dev;
      last.inode = st.st_ino;
      last.size = st.st_size;
      last.mtime = st.st_mtim;
      last.module = module;
    }
    return module;
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("cannot load TVM kernel '" + path + "': " + e.message());
  }
}

tvm::ffi::Function GetEntry(const tvm::ffi::Module& module, const std::string& path,
                            const std::string& entry) {
  auto f = module->GetFunction(entry, /*query_imports=*/true);
  if (!f.has_value()) {
    throw std::runtime_error("TVM kernel '" + path + "' has no function '" + entry + "'");
  }
  return *f;
}

}  // namespace

void LoadTvmRuntime(const std::string& path) {
  if (g_runtime_loaded.load()) return;
  if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* err = dlerror();
    throw std::runtime_error("cannot load the TVM runtime '" + path + "': " + (err ? err : "?"));
  }
  g_runtime_loaded = true;
}

bool TvmRuntimeLoaded() { return g_runtime_loaded.load(); }

void ConfigureTvmThreadPool(const std::vector<int>& cpus) {
  if (cpus.empty()) throw std::invalid_argument("a TVM thread pool needs at least one CPU");
  auto config = tvm::ffi::Function::GetGlobal("runtime.config_threadpool");
  if (!config.has_value()) {
    throw std::runtime_error("the TVM runtime is not loaded: runtime.config_threadpool is missing");
  }
  tvm::ffi::Array<tvm::ffi::String> ids;
  for (int c : cpus) ids.push_back(std::to_string(c));
  // -2 is ThreadGroup::kSpecifyOneCorePerThread: worker i is bound to ids[i].
  constexpr int kSpecifyOneCorePerThread = -2;
  try {
    (*config)(kSpecifyOneCorePerThread, static_cast<int>(cpus.size()), ids);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("TVM refused the thread pool configuration: " + e.message());
  }
}

int TvmNumThreads() {
  auto f = tvm::ffi::Function::GetGlobal("runtime.NumThreads");
  if (!f.has_value()) throw std::runtime_error("the TVM runtime is not loaded");
  return (*f)().cast<int>();
}

TvmKernel::TvmKernel(const std::string& path, std::vector<ArgSpec> specs, const std::string& entry)
    : path_(path),
      specs_(std::move(specs)),
      module_(LoadModule(path)),
      function_(GetEntry(module_, path, entry)) {}

void TvmKernel::Check(const std::vector<ArrayView>& args) const {
  if (args.size() != specs_.size()) {
    throw std::invalid_argument("kernel '" + path_ + "' takes " + std::to_string(specs_.size()) +
                                " arrays, got " + std::to_string(args.size()));
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const ArrayView& a = args[i];
    const ArgSpec& s = specs_[i];
    const std::string who = "argument " + std::to_string(i) + " ('" + s.name + "')";
    CheckArray(who, s, a);
    if (reinterpret_cast<std::uintptr_t>(a.data) % kTvmAlignment != 0) {
      throw std::invalid_argument(who + ": data is not " + std::to_string(kTvmAlignment) +
                                  "-byte aligned (convbench.spec.arrays.aligned_copy makes an "
                                  "aligned copy)");
    }
    if (s.output && !a.writeable) {
      throw std::invalid_argument(who + ": the output array is read-only");
    }
  }
}

std::vector<DLTensor> TvmKernel::ToDLTensors(const std::vector<ArrayView>& args) const {
  std::vector<DLTensor> tensors(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    DLTensor& t = tensors[i];
    t.data = args[i].data;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(args[i].shape.size());
    t.dtype = args[i].dtype;
    t.shape = const_cast<std::int64_t*>(args[i].shape.data());
    t.strides = nullptr;  // compact, checked above
    t.byte_offset = 0;
  }
  return tensors;
}

void TvmKernel::Call(const std::vector<ArrayView>& args) const {
  Check(args);
  std::vector<DLTensor> tensors = ToDLTensors(args);
  std::vector<tvm::ffi::AnyView> packed(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) packed[i] = &tensors[i];
  tvm::ffi::Any result;
  try {
    function_.CallPacked(packed.data(), static_cast<int32_t>(packed.size()), &result);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("TVM kernel '" + path_ + "' failed: " + e.message());
  }
}

Measurement TvmKernel::TimeRotating(const std::vector<std::vector<ArrayView>>& sets,
                                    const RunConfig& config) const {
  if (sets.empty()) throw std::invalid_argument("time_rotating needs at least one set of arrays");
  for (const auto& args : sets) Check(args);
  std::vector<std::vector<DLTensor>> tensors;
  tensors.reserve(sets.size());
  for (const auto& args : sets) tensors.push_back(ToDLTensors(args));
  std::vector<std::vector<tvm::ffi::AnyView>> packed(sets.size());
  for (std::size_t s = 0; s < sets.size(); ++s) {
    packed[s].resize(tensors[s].size());
    for (std::size_t i = 0; i < tensors[s].size(); ++i) packed[s][i] = &tensors[s][i];
  }
  const auto num_args = static_cast<int32_t>(packed[0].size());
  const tvm::ffi::Function& f = function_;
  tvm::ffi::Any result;
  std::size_t next = 0;
  const std::size_t n_sets = packed.size();
  try {
    return TimeLoop(
        [&] {
          f.CallPacked(packed[next].data(), num_args, &result);
          next = next + 1 == n_sets ? 0 : next + 1;
        },
        config);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("TVM kernel '" + path_ + "' failed while timed: " + e.message());
  }
}

Measurement TvmKernel::Time(const std::vector<ArrayView>& args, const RunConfig& config) const {
  Check(args);
  std::vector<DLTensor> tensors = ToDLTensors(args);
  std::vector<tvm::ffi::AnyView> packed(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) packed[i] = &tensors[i];
  const auto num_args = static_cast<int32_t>(packed.size());
  const tvm::ffi::AnyView* argv = packed.data();
  const tvm::ffi::Function& f = function_;
  tvm::ffi::Any result;
  try {
    return TimeLoop([&] { f.CallPacked(argv, num_args, &result); }, config);
  } catch (const tvm::ffi::Error& e) {
    throw std::runtime_error("TVM kernel '" + path_ + "' failed while timed: " + e.message());
  }
}

}  // namespace convbench

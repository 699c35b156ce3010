// The TVM runtime and its thread pool, exported kernels (TvmKernel) and Relax executables
// (RelaxVm).
#include <tvm/ffi/error.h>

#include <memory>

#include "bind_common.h"
#include "relax_vm.h"
#include "tvm_kernel.h"

namespace convbench {

namespace {

std::vector<ArrayView> ToViews(const py::sequence& arrays) {
  std::vector<ArrayView> views;
  views.reserve(arrays.size());
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    views.push_back(ToView(arrays[i], "argument " + std::to_string(i)));
  }
  return views;
}

ArgSpec ToSpec(const py::tuple& t) {
  if (t.size() != 3) throw py::value_error("an argument spec is (name, shape, is_output)");
  ArgSpec s;
  s.name = t[0].cast<std::string>();
  s.shape = t[1].cast<std::vector<std::int64_t>>();
  s.output = t[2].cast<bool>();
  return s;
}

std::vector<ArgSpec> ToSpecs(const std::vector<py::tuple>& tuples) {
  std::vector<ArgSpec> specs;
  for (const auto& t : tuples) specs.push_back(ToSpec(t));
  return specs;
}

// `obj.time(arrays, warmup_s, ...)`: obj.Time(views, config) with the GIL released, for the
// objects that check and time their arrays themselves.
template <class Class>
void BindTimeArrays(Class& cls) {
  using T = typename Class::type;
  cls.def(
      "time",
      [](const T& obj, const py::sequence& a, double warmup_s, double min_sample_s, int samples,
         std::int64_t max_iters, std::int64_t warmup_iters) {
        auto views = ToViews(a);
        RunConfig c = MakeConfig(warmup_s, min_sample_s, samples, max_iters, warmup_iters);
        Measurement m;
        {
          py::gil_scoped_release release;
          m = obj.Time(views, c);
        }
        return ToDict(m);
      },
      py::arg("arrays"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30, py::arg("warmup_iters") = 10);
}

}  // namespace

void BindTvm(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tvm::ffi::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.message().c_str());
    }
  });

  m.def("load_tvm_runtime", &LoadTvmRuntime, py::arg("path"));
  m.def("tvm_runtime_loaded", &TvmRuntimeLoaded);
  m.def("configure_tvm_threadpool", &ConfigureTvmThreadPool, py::arg("cpus"));
  m.def("tvm_num_threads", &TvmNumThreads);

  auto tvmkernel_class = py::class_<TvmKernel, std::shared_ptr<TvmKernel>>(m, "TvmKernel")
      .def(py::init([](const std::string& path, const std::vector<py::tuple>& specs,
                       const std::string& entry) {
             return std::make_shared<TvmKernel>(path, ToSpecs(specs), entry);
           }),
           py::arg("path"), py::arg("specs"), py::arg("entry") = "main")
      .def_property_readonly("path", &TvmKernel::path)
      .def_property_readonly("function_handle", [](const TvmKernel& k) {
        return reinterpret_cast<std::uintptr_t>(k.function_handle());
      })
      .def("check", [](const TvmKernel& k, const py::sequence& a) { k.Check(ToViews(a)); })
      .def("call",
           [](const TvmKernel& k, const py::sequence& a) {
             auto views = ToViews(a);
             py::gil_scoped_release release;
             k.Call(views);
           });
  BindTimeArrays(tvmkernel_class);
  tvmkernel_class.def(
      "time_rotating",
      [](const TvmKernel& k, const std::vector<py::sequence>& sets, double warmup_s,
         double min_sample_s, int samples, std::int64_t max_iters, std::int64_t warmup_iters) {
        std::vector<std::vector<ArrayView>> views;
        views.reserve(sets.size());
        for (const auto& s : sets) views.push_back(ToViews(s));
        RunConfig c = MakeConfig(warmup_s, min_sample_s, samples, max_iters, warmup_iters);
        Measurement m;
        {
          py::gil_scoped_release release;
          m = k.TimeRotating(views, c);
        }
        return ToDict(m);
      },
      py::arg("sets"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30,
      py::arg("warmup_iters") = 10);

  // A Relax VM executable: `inputs` are the entry's arguments, `output` the one tensor it returns
  // (copied into the caller's array by `call`; dropped after each call by `time`).
  auto relaxvm_class = py::class_<RelaxVm, std::shared_ptr<RelaxVm>>(m, "RelaxVm")
      .def(py::init([](const std::string& path, const std::vector<py::tuple>& inputs,
                       const py::tuple& output, const std::string& entry) {
             std::vector<ArgSpec> in = ToSpecs(inputs);
             return std::make_shared<RelaxVm>(path, std::move(in), ToSpec(output), entry);
           }),
           py::arg("path"), py::arg("inputs"), py::arg("output"), py::arg("entry") = "main")
      .def_property_readonly("path", &RelaxVm::path)
      .def_property_readonly("entry", &RelaxVm::entry)
      .def("check", [](const RelaxVm& vm, const py::sequence& a) { vm.Check(ToViews(a)); })
      .def(
          "call",
          [](const RelaxVm& vm, const py::sequence& a, const py::handle& out) {
            auto views = ToViews(a);
            ArrayView out_view = ToView(out, "argument " + std::to_string(views.size()));
            py::gil_scoped_release release;
            vm.Call(views, out_view);
          },
          py::arg("inputs"), py::arg("out"));
  BindTimeArrays(relaxvm_class);
  relaxvm_class.def(
      "profile",
      [](const RelaxVm& vm, const py::sequence& a, double warmup_s, double min_sample_s,
         int samples, std::int64_t max_iters, std::int64_t warmup_iters, int min_runs) {
        auto views = ToViews(a);
        RunConfig c = MakeConfig(warmup_s, min_sample_s, samples, max_iters, warmup_iters);
        VmProfile p;
        {
          py::gil_scoped_release release;
          p = vm.Profile(views, c, min_runs);
        }
        py::dict d;
        d["symbols"] = p.symbols;
        d["call_s"] = p.call_s;
        d["gap_s"] = p.gap_s;
        d["tail_s"] = p.tail_s;
        d["whole_s"] = p.whole_s;
        d["plain_s"] = p.plain_s;
        d["warmup_iters"] = p.warmup_iters;
        return d;
      },
      py::arg("arrays"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30,
      py::arg("warmup_iters") = 10, py::arg("min_runs") = 20);
}

}  // namespace convbench

// Python bindings: argument conversion only. Every behaviour lives in the harness library so a
// plain C++ program can use it too.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "affinity.h"
#include "peak.h"
#include "relax_vm.h"
#include "runner.h"
#include "statistics.h"
#include "tf_op.h"
#include "tvm_kernel.h"

namespace py = pybind11;
using namespace convbench;

namespace {

DLDataType ToDLDataType(const py::dtype& dt) {
  const char kind = dt.kind();
  DLDataType r{};
  r.bits = static_cast<uint8_t>(dt.itemsize() * 8);
  r.lanes = 1;
  switch (kind) {
    case 'f': r.code = kDLFloat; break;
    case 'i': r.code = kDLInt; break;
    case 'u': r.code = kDLUInt; break;
    default: throw py::type_error("unsupported array dtype '" + std::string(py::str(dt)) + "'");
  }
  return r;
}

ArrayView ToView(const py::handle& obj, std::size_t index) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error("argument " + std::to_string(index) + " is not a numpy array");
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  ArrayView v;
  // Read-only inputs are fine: the spec says which arguments the kernel writes.
  v.data = const_cast<void*>(a.data());
  v.dtype = ToDLDataType(a.dtype());
  v.shape.assign(a.shape(), a.shape() + a.ndim());
  v.strides_bytes.assign(a.strides(), a.strides() + a.ndim());
  v.writeable = a.writeable();
  return v;
}

std::vector<ArrayView> ToViews(const py::sequence& arrays) {
  std::vector<ArrayView> views;
  views.reserve(arrays.size());
  for (std::size_t i = 0; i < arrays.size(); ++i) views.push_back(ToView(arrays[i], i));
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

py::dict ToDict(const Summary& s) {
  py::dict d;
  d["n"] = s.n;
  d["min"] = s.min;
  d["max"] = s.max;
  d["mean"] = s.mean;
  d["median"] = s.median;
  d["stddev"] = s.stddev;
  d["cv"] = s.cv;
  d["p10"] = s.p10;
  d["p90"] = s.p90;
  return d;
}

py::dict ToDict(const Measurement& m) {
  py::dict d;
  d["iters_per_sample"] = m.iters_per_sample;
  d["warmup_iters"] = m.warmup_iters;
  d["wall_s"] = m.wall_s;
  d["thread_cpu_s"] = m.thread_cpu_s;
  d["process_cpu_s"] = m.process_cpu_s;
  d["cpu_before"] = m.cpu_before;
  d["cpu_after"] = m.cpu_after;
  return d;
}

RunConfig MakeConfig(double warmup_s, double min_sample_s, int samples, std::int64_t max_iters) {
  RunConfig c;
  c.warmup_s = warmup_s;
  c.min_sample_s = min_sample_s;
  c.samples = samples;
  c.max_iters = max_iters;
  ValidateConfig(c);
  return c;
}

TfConvShape ToTfShape(const py::dict& d) {
  TfConvShape s;
  auto get = [&](const char* k) { return d[k].cast<int>(); };
  s.N = get("N"); s.H = get("H"); s.W = get("W"); s.C = get("C");
  s.KH = get("KH"); s.KW = get("KW"); s.O = get("O");
  s.stride_h = get("stride_h"); s.stride_w = get("stride_w");
  s.dil_h = get("dil_h"); s.dil_w = get("dil_w");
  s.padding = d["padding"].cast<std::string>();
  s.pad_top = get("pad_top"); s.pad_bottom = get("pad_bottom");
  s.pad_left = get("pad_left"); s.pad_right = get("pad_right");
  return s;
}

// `obj.time(arrays, warmup_s, ...)`: obj.Time(views, config) with the GIL released, for the
// objects that check and time their arrays themselves (TvmKernel, RelaxVm).
template <class Class>
void BindTimeArrays(Class& cls) {
  using T = typename Class::type;
  cls.def(
      "time",
      [](const T& obj, const py::sequence& a, double warmup_s, double min_sample_s, int samples,
         std::int64_t max_iters) {
        auto views = ToViews(a);
        RunConfig c = MakeConfig(warmup_s, min_sample_s, samples, max_iters);
        Measurement m;
        {
          py::gil_scoped_release release;
          m = obj.Time(views, c);
        }
        return ToDict(m);
      },
      py::arg("arrays"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30);
}

// `obj.time(warmup_s, ...)`: obj.Run() in the timing loop with the GIL released, for the TF
// runners that hold their own inputs.
template <class Class>
void BindTimeRun(Class& cls) {
  using T = typename Class::type;
  cls.def(
      "time",
      [](T& obj, double warmup_s, double min_sample_s, int samples, std::int64_t max_iters) {
        RunConfig cfg = MakeConfig(warmup_s, min_sample_s, samples, max_iters);
        Measurement m;
        {
          py::gil_scoped_release release;
          m = TimeLoop([&] { obj.Run(); }, cfg);
        }
        return ToDict(m);
      },
      py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01, py::arg("samples") = 10,
      py::arg("max_iters") = std::int64_t{1} << 30);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "convbench native harness: TVM kernel loading, timing loop, pinning, statistics";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tvm::ffi::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.message().c_str());
    }
  });

  m.def("summarize", [](std::vector<double> v) { return ToDict(Summarize(std::move(v))); },
        py::arg("samples"));

  m.def(
      "measure_peak",
      [](const std::vector<int>& cpus, double seconds, int repeats) {
        PeakResult r;
        {
          py::gil_scoped_release release;
          r = MeasurePeak(cpus, seconds, repeats);
        }
        py::dict d;
        d["isa"] = r.isa;
        d["threads"] = r.threads;
        d["gflops"] = r.gflops;
        d["seconds"] = r.seconds;
        return d;
      },
      py::arg("cpus"), py::arg("seconds") = 0.2, py::arg("repeats") = 3);
  m.def("peak_isa", &PeakIsa);

  m.def("load_tvm_runtime", &LoadTvmRuntime, py::arg("path"));
  m.def("tvm_runtime_loaded", &TvmRuntimeLoaded);
  m.def("configure_tvm_threadpool", &ConfigureTvmThreadPool, py::arg("cpus"));
  m.def("tvm_num_threads", &TvmNumThreads);

  m.def("pin_current_thread", &PinCurrentThread, py::arg("cpus"));
  m.def("current_thread_affinity", &CurrentThreadAffinity);
  m.def("process_thread_affinities", &ProcessThreadAffinities);
  m.def("current_cpu", &CurrentCpu);
  m.def("current_thread_id", &CurrentThreadId);

  // `run_n(n)` is a Python callable making n calls in a loop of its own (Python or Cython); the
  // warm-up, calibration, clocks and statistics are the C++ ones every path shares. GIL held.
  m.def(
      "time_loop",
      [](const py::function& run_n, double warmup_s, double min_sample_s, int samples,
         std::int64_t max_iters) {
        return ToDict(TimeLoopN([&](std::int64_t n) { run_n(n); },
                                MakeConfig(warmup_s, min_sample_s, samples, max_iters)));
      },
      py::arg("run_n"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30);

  // TensorFlow's Conv2D through the C API (no Python per call). `kind` is "eager" or "graph".
  auto tfnativeconv_class =
      py::class_<TfNativeConv, std::shared_ptr<TfNativeConv>>(m, "TfNativeConv")
      .def(py::init([](const std::string& lib, const std::string& kind, const py::dict& shape,
                       const py::array_t<float, py::array::c_style | py::array::forcecast>& input,
                       const py::array_t<float, py::array::c_style | py::array::forcecast>& filter,
                       int threads) {
             return std::make_shared<TfNativeConv>(lib, kind, ToTfShape(shape), input.data(),
                                                   filter.data(), threads);
           }),
           py::arg("lib"), py::arg("kind"), py::arg("shape"), py::arg("input"), py::arg("filter"),
           py::arg("threads"))
      .def("run",
           [](TfNativeConv& c, py::array_t<float, py::array::c_style>& out) {
             if (static_cast<std::size_t>(out.size()) != c.OutputElems()) {
               throw py::value_error("output array has " + std::to_string(out.size()) +
                                     " elements, the conv produces " +
                                     std::to_string(c.OutputElems()));
             }
             float* data = out.mutable_data();
             py::gil_scoped_release release;
             c.RunAndCopy(data);
           });
  BindTimeRun(tfnativeconv_class);

  auto tvmkernel_class = py::class_<TvmKernel, std::shared_ptr<TvmKernel>>(m, "TvmKernel")
      .def(py::init([](const std::string& path, const std::vector<py::tuple>& specs,
                       const std::string& entry) {
             std::vector<ArgSpec> s;
             for (const auto& t : specs) s.push_back(ToSpec(t));
             return std::make_shared<TvmKernel>(path, std::move(s), entry);
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

  // A Relax VM executable: `inputs` are the entry's arguments, `output` the one tensor it returns
  // (copied into the caller's array by `call`; dropped after each call by `time`).
  auto relaxvm_class = py::class_<RelaxVm, std::shared_ptr<RelaxVm>>(m, "RelaxVm")
      .def(py::init([](const std::string& path, const std::vector<py::tuple>& inputs,
                       const py::tuple& output, const std::string& entry) {
             std::vector<ArgSpec> s;
             for (const auto& t : inputs) s.push_back(ToSpec(t));
             return std::make_shared<RelaxVm>(path, std::move(s), ToSpec(output), entry);
           }),
           py::arg("path"), py::arg("inputs"), py::arg("output"), py::arg("entry") = "main")
      .def_property_readonly("path", &RelaxVm::path)
      .def_property_readonly("entry", &RelaxVm::entry)
      .def("check", [](const RelaxVm& vm, const py::sequence& a) { vm.Check(ToViews(a)); })
      .def(
          "call",
          [](const RelaxVm& vm, const py::sequence& a, const py::handle& out) {
            auto views = ToViews(a);
            ArrayView out_view = ToView(out, views.size());
            py::gil_scoped_release release;
            vm.Call(views, out_view);
          },
          py::arg("inputs"), py::arg("out"));
  BindTimeArrays(relaxvm_class);

  // The ConfigProto the TF C API paths hand to their contexts and sessions, as bytes, so that a
  // test can parse it with TF's own ConfigProto and check the hand-written encoding.
  m.def(
      "make_config_proto",
      [](int intra, int inter, bool disable_constant_folding, bool disable_grappler) {
        return py::bytes(MakeConfigProto(intra, inter, disable_constant_folding, disable_grappler));
      },
      py::arg("intra"), py::arg("inter"), py::arg("disable_constant_folding") = false,
      py::arg("disable_grappler") = false);

  // A frozen graph (serialized GraphDef) run through the C API: `input` (float32, copied once) is
  // fed to input_op:0 on every run and output_op:0 is fetched. optimize=False turns grappler off.
  auto tfgraphrunner_class =
      py::class_<TfGraphRunner, std::shared_ptr<TfGraphRunner>>(m, "TfGraphRunner")
      .def(py::init([](const std::string& lib_path, const py::bytes& graph_def,
                       const std::string& input_op, const std::string& output_op,
                       const py::array& input, int threads, bool optimize) {
             // No forcecast: a float64 array silently rounded to float32 would run a different
             // model input than the caller's.
             if (!input.dtype().equal(py::dtype::of<float>())) {
               throw py::type_error("input must be a float32 array, got " +
                                    std::string(py::str(input.dtype())));
             }
             auto in = py::array_t<float, py::array::c_style>::ensure(input);  // contiguous copy
             if (!in) throw py::type_error("input cannot be read as a C-contiguous float32 array");
             std::vector<std::int64_t> shape(in.shape(), in.shape() + in.ndim());
             std::string gd = graph_def;
             py::gil_scoped_release release;  // import and session setup take a while
             return std::make_shared<TfGraphRunner>(lib_path, gd, input_op, output_op,
                                                    std::move(shape), in.data(), threads,
                                                    optimize);
           }),
           py::arg("lib_path"), py::arg("graph_def"), py::arg("input_op"), py::arg("output_op"),
           py::arg("input"), py::arg("threads"), py::arg("optimize") = true)
      .def("run",
           [](TfGraphRunner& r) {
             py::gil_scoped_release release;
             r.Run();
           })
      .def(
          "run_and_copy",
          [](TfGraphRunner& r, const py::array& out) {
            // Checked here rather than converted: a converted copy would take the output and
            // leave the caller's array as it was.
            if (!out.dtype().equal(py::dtype::of<float>())) {
              throw py::type_error("output array must be float32, got " +
                                   std::string(py::str(out.dtype())));
            }
            if (!(out.flags() & py::array::c_style)) {
              throw py::value_error("output array must be C-contiguous");
            }
            if (!out.writeable()) throw py::value_error("output array is read-only");
            auto* data = static_cast<float*>(const_cast<void*>(out.data()));
            const auto n = static_cast<std::size_t>(out.size());
            py::gil_scoped_release release;
            r.RunAndCopy(data, n);
          },
          py::arg("out"))
      .def_property_readonly("output_shape",
                             [](TfGraphRunner& r) {
                               std::vector<std::int64_t> shape;
                               {
                                 py::gil_scoped_release release;  // may run the graph once
                                 shape = r.OutputShape();
                               }
                               return shape;
                             })
      .def_property_readonly("input_shape", &TfGraphRunner::InputShape);
  BindTimeRun(tfgraphrunner_class);
}

// TensorFlow through its C API: one Conv2D (TfNativeConv), a frozen graph (TfGraphRunner) and the
// ConfigProto both hand to TF.
#include <memory>

#include "bind_common.h"
#include "tf_config_proto.h"
#include "tf_conv.h"
#include "tf_graph_runner.h"

namespace convbench {

namespace {

// The conv's dims from the Python dict; OH and OW are the output's, as Workload.output_shape has
// them.
TfConvShape ToTfShape(const py::dict& d) {
  auto get = [&](const char* k) {
    if (!d.contains(k)) throw py::key_error(std::string("the conv shape has no '") + k + "'");
    return d[k];
  };
  auto get_int = [&](const char* k) { return get(k).cast<int>(); };
  TfConvShape s;
  s.N = get_int("N"); s.H = get_int("H"); s.W = get_int("W"); s.C = get_int("C");
  s.KH = get_int("KH"); s.KW = get_int("KW"); s.O = get_int("O");
  s.stride_h = get_int("stride_h"); s.stride_w = get_int("stride_w");
  s.dil_h = get_int("dil_h"); s.dil_w = get_int("dil_w");
  s.padding = get("padding").cast<std::string>();
  s.pad_top = get_int("pad_top"); s.pad_bottom = get_int("pad_bottom");
  s.pad_left = get_int("pad_left"); s.pad_right = get_int("pad_right");
  s.OH = get_int("OH"); s.OW = get_int("OW");
  if (d.contains("groups")) s.groups = get_int("groups");
  return s;
}

// `obj.time(warmup_s, ...)`: obj.Run() in the timing loop with the GIL released, for the TF
// runners that hold their own inputs.
template <class Class>
void BindTimeRun(Class& cls) {
  using T = typename Class::type;
  cls.def(
      "time",
      [](T& obj, double warmup_s, double min_sample_s, int samples, std::int64_t max_iters, std::int64_t warmup_iters) {
        RunConfig cfg = MakeConfig(warmup_s, min_sample_s, samples, max_iters, warmup_iters);
        Measurement m;
        {
          py::gil_scoped_release release;
          m = TimeLoop([&] { obj.Run(); }, cfg);
        }
        return ToDict(m);
      },
      py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01, py::arg("samples") = 10,
      py::arg("max_iters") = std::int64_t{1} << 30, py::arg("warmup_iters") = 10);
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

}  // namespace

void BindTf(py::module_& m) {
  // The TF classes' wrong-dtype errors: TypeError, where a plain std::invalid_argument is a
  // ValueError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ArrayTypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  // TensorFlow's Conv2D through the C API (no Python per call). `kind` is "eager" or "graph".
  // input and filter are converted to float32 and copied; `run` copies the output into `out`,
  // which must be float32, C-contiguous and writeable (no converted copy that would take the
  // output and leave the caller's array as it was).
  auto tfnativeconv_class =
      py::class_<TfConvRunner, std::shared_ptr<TfConvRunner>>(m, "TfNativeConv")
      .def(py::init([](const std::string& lib, const std::string& kind, const py::dict& shape,
                       const FloatArray& input, const FloatArray& filter, int threads) {
             return std::shared_ptr<TfConvRunner>(MakeTfConv(lib, kind, ToTfShape(shape),
                                                             ToView(input, "input"),
                                                             ToView(filter, "filter"), threads));
           }),
           py::arg("lib"), py::arg("kind"), py::arg("shape"), py::arg("input"), py::arg("filter"),
           py::arg("threads"))
      .def("run", [](TfConvRunner& c, const py::array& out) {
        ArrayView view = ToView(out, "output array");
        py::gil_scoped_release release;
        c.RunAndCopy(view);
      });
  BindTimeRun(tfnativeconv_class);

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
             // A strided input becomes a C-contiguous copy of the same dtype (the runner copies
             // it once anyway); the dtype is the runner's to check, so nothing is cast.
             auto in = py::array::ensure(input, py::array::c_style);
             if (!in) throw py::type_error("input cannot be read as a C-contiguous array");
             ArrayView view = ToView(in, "input");
             std::string gd = graph_def;
             py::gil_scoped_release release;  // import and session setup take a while
             return std::make_shared<TfGraphRunner>(lib_path, gd, input_op, output_op, view,
                                                    threads, optimize);
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
            ArrayView view = ToView(out, "output array");
            py::gil_scoped_release release;
            r.RunAndCopy(view);
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

}  // namespace convbench

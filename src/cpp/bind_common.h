// What the binding files share: pybind11 with the numpy and STL casters (in every binding file,
// so that each type converts the same way everywhere), the conversions between Python objects and
// the harness's types, and the three parts of the module. The bindings convert arguments only:
// every check and behaviour lives in the harness library, so a plain C++ program can use it too.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "array_view.h"
#include "runner.h"
#include "statistics.h"

namespace convbench {

namespace py = pybind11;

// A numpy array described for the harness (read-only arrays too: the callee checks whether it
// writes one). TypeError naming `what` for anything but a numpy array, or for a dtype DLPack
// cannot describe.
ArrayView ToView(const py::handle& obj, const std::string& what);

py::dict ToDict(const Summary& s);
py::dict ToDict(const Measurement& m);

// A validated RunConfig (ValueError for a bad value).
RunConfig MakeConfig(double warmup_s, double min_sample_s, int samples, std::int64_t max_iters,
                     std::int64_t warmup_iters);

// summarize, measure_peak, peak_isa, the pinning functions and time_loop.
void BindTiming(py::module_& m);
// The TVM runtime and its thread pool, TvmKernel and RelaxVm.
void BindTvm(py::module_& m);
// TfNativeConv, TfGraphRunner and make_config_proto.
void BindTf(py::module_& m);

}  // namespace convbench

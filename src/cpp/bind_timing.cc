// The timing loop as a Python callable's driver, statistics, the FMA peak and thread pinning.
#include "fpenv.h"
#include "affinity.h"
#include "bind_common.h"
#include "peak.h"

namespace convbench {

void BindTiming(py::module_& m) {
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

  m.def("pin_current_thread", &PinCurrentThread, py::arg("cpus"));
  m.def("current_thread_affinity", &CurrentThreadAffinity);
  m.def("process_thread_affinities", &ProcessThreadAffinities);
  m.def("current_cpu", &CurrentCpu);
  m.def("current_thread_id", &CurrentThreadId);
  m.def("set_flush_denormals", &SetFlushDenormals, py::arg("on"));
  m.def("flush_denormals", &FlushDenormals);

  // `run_n(n)` is a Python callable making n calls in a loop of its own (Python or Cython); the
  // warm-up, calibration, clocks and statistics are the C++ ones every path shares. GIL held.
  m.def(
      "time_loop",
      [](const py::function& run_n, double warmup_s, double min_sample_s, int samples,
         std::int64_t max_iters, std::int64_t warmup_iters) {
        return ToDict(TimeLoopN([&](std::int64_t n) { run_n(n); },
                                MakeConfig(warmup_s, min_sample_s, samples, max_iters, warmup_iters)));
      },
      py::arg("run_n"), py::arg("warmup_s") = 0.05, py::arg("min_sample_s") = 0.01,
      py::arg("samples") = 10, py::arg("max_iters") = std::int64_t{1} << 30, py::arg("warmup_iters") = 10);
}

}  // namespace convbench

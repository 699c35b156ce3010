#include "bind_common.h"

namespace convbench {

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
}  // namespace

ArrayView ToView(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(what + " is not a numpy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  ArrayView v;
  v.data = const_cast<void*>(a.data());
  v.dtype = ToDLDataType(a.dtype());
  v.shape.assign(a.shape(), a.shape() + a.ndim());
  v.strides_bytes.assign(a.strides(), a.strides() + a.ndim());
  v.writeable = a.writeable();
  return v;
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

RunConfig MakeConfig(double warmup_s, double min_sample_s, int samples, std::int64_t max_iters,
                     std::int64_t warmup_iters) {
  RunConfig c;
  c.warmup_s = warmup_s;
  c.min_sample_s = min_sample_s;
  c.samples = samples;
  c.max_iters = max_iters;
  c.warmup_iters = warmup_iters;
  ValidateConfig(c);
  return c;
}

}  // namespace convbench

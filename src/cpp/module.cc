// The Python module convbench._core: pybind11 bindings, argument conversion only. Every behaviour
// lives in the harness library so a plain C++ program can use it too.
#include "bind_common.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "convbench native harness: TVM kernel loading, timing loop, pinning, statistics";
  convbench::BindTiming(m);
  convbench::BindTvm(m);
  convbench::BindTf(m);
}

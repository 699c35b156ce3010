"""convbench: is this convolution slow because of the kernel, or because of the framework?

The package is layered; each layer imports only from the layers below it:

  0  version, paths, cpus, spec            what is measured (pydantic, numpy)
  1  build, native, frameworks             TVM builds; the compiled harness; TF and oneDNN
  2  measure, results                      worker tasks and handlers; records and analysis
  3  report                                tables, the live display, plots
  4  run, tune                             a run's stages; tuning
  5  cli                                   the commands
"""

from __future__ import annotations

from .spec import ConvSpec, ConvWorkload, SpecError, load_shapes, load_spec, parse_spec
from .version import __version__

__all__ = [
    "ConvSpec",
    "ConvWorkload",
    "SpecError",
    "__version__",
    "load_shapes",
    "load_spec",
    "parse_spec",
]

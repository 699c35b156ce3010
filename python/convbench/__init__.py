"""convbench: is this convolution slow because of the kernel, or because of the framework?"""

from __future__ import annotations

__version__ = "0.1.0"

from .spec import ConvSpec, SpecError, Workload, load_spec, parse_spec  # noqa: E402

__all__ = ["ConvSpec", "SpecError", "Workload", "__version__", "load_spec", "parse_spec"]

"""TensorFlow's C API from the C++ harness: the library found without importing TF, a conv run
eagerly or as a one-op graph, and a frozen GraphDef run whole. No Python per call."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..spec.conv import ConvWorkload

__all__ = ["tf_graph_runner", "tf_library_path", "tf_native_conv"]


def tf_library_path() -> str:
    """libtensorflow_cc.so.2 of the installed tensorflow wheel, found without importing TF."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "TensorFlow is not installed: the TF native paths need its C API "
            "(pip install tensorflow-cpu)"
        )
    for loc in spec.submodule_search_locations:
        lib = Path(loc) / "libtensorflow_cc.so.2"
        if lib.exists():
            return str(lib)
    raise RuntimeError(
        "the installed tensorflow has no libtensorflow_cc.so.2: cannot reach TF's C API"
    )


def tf_native_conv(
    kind: str,
    w: ConvWorkload,
    data: np.ndarray,
    weight: np.ndarray,
    threads: int,
    lib: str | None = None,
) -> Any:
    """TF's Conv2D through the C API from the C++ harness: kind 'eager' (TFE_Execute) or
    'graph' (a one-op graph, input fed, run with TF_SessionRun). The output's size comes from
    the workload (ConvWorkload.output_shape), the one place conv geometry is computed."""
    (pt, pb), (pl, pr) = w.spec.pads
    n, h, wd, c = w.input_shape
    kh, kw, _, o = w.weight_shape
    _, oh, ow, _ = w.output_shape
    shape = {
        "N": n,
        "H": h,
        "W": wd,
        "C": c,
        "KH": kh,
        "KW": kw,
        "O": o,
        "OH": oh,
        "OW": ow,
        "stride_h": w.spec.strides[0],
        "stride_w": w.spec.strides[1],
        "dil_h": w.spec.dilation[0],
        "dil_w": w.spec.dilation[1],
        "padding": w.spec.padding if isinstance(w.spec.padding, str) else "EXPLICIT",
        "pad_top": pt,
        "pad_bottom": pb,
        "pad_left": pl,
        "pad_right": pr,
        "groups": w.spec.groups,
    }
    if w.depthwise:  # DepthwiseConv2dNative's filter (KH, KW, C, O / C): the same bytes
        weight = weight.reshape(kh, kw, c, o // c)
    return _core.TfNativeConv(lib or tf_library_path(), kind, shape, data, weight, threads)


def tf_graph_runner(
    graph_def: bytes,
    output: str,
    x: np.ndarray,
    threads: int,
    optimize: bool = True,
    input_name: str = "input",
) -> Any:
    """A frozen GraphDef run whole through TF_SessionRun, `x` fed to the placeholder
    `input_name`; optimize=False turns grappler off."""
    return _core.TfGraphRunner(
        tf_library_path(), graph_def, input_name, output, x, threads, optimize
    )

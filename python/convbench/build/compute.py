"""TVM compute definitions: the conv as a TIR PrimFunc, and the empty kernel. No schedules here:
build.schedules schedules what this module defines."""

from __future__ import annotations

from typing import Any

from ..spec.conv import ConvWorkload

__all__ = ["VEC_LANES", "conv_module", "empty_module", "superset"]

VEC_LANES = 16  # fp32 lanes of an AVX-512 register


def superset(groups: int, ipg: int, opg: int) -> int:
    """How many groups of a grouped conv to compute as one group of 16 output channels (1: as
    they are). Only for groups of fewer than 16 output channels that tile 16 exactly, and not
    for a depthwise conv (one input channel per group), which has a schedule of its own."""
    if groups == 1 or ipg == 1 or opg >= VEC_LANES or VEC_LANES % opg:
        return 1
    s = VEC_LANES // opg
    return s if groups % s == 0 else 1


def conv_module(w: ConvWorkload) -> Any:
    """NHWC x HWIO -> NHWC conv as a TIR PrimFunc `main(data, weight, out)`, padding included.
    A grouped conv (depthwise: one group per input channel) reads, for output channel o, the
    input channels of its group: (o // (Cout / groups)) * (Cin / groups) + rc."""
    import tvm
    from tvm import te, tirx

    n, h, wd, cin = w.input_shape
    kh, kw, ipg, cout = w.weight_shape
    opg = cout // w.spec.groups
    (pt, pb), (pl, pr) = w.spec.pads
    (sh, sw), (dh, dw) = w.spec.strides, w.spec.dilation
    _, oh, ow, _ = w.output_shape
    data = te.placeholder((n, h, wd, cin), "float32", name="data")
    weight = te.placeholder((kh, kw, ipg, cout), "float32", name="weight")
    args = [data, weight]
    s = superset(w.spec.groups, ipg, opg)
    if s > 1:
        # Groups of fewer than 16 output channels: a vector of 16 channels would read 16/opg
        # groups' inputs at once, a gather. s groups become one of 16 output channels whose
        # weight is block-diagonal (zeros between the groups, expanded in the kernel from the
        # real one): s times the multiply-adds, each a broadcast FMA.
        ipg2 = ipg * s
        weight = te.compute(
            (kh, kw, ipg2, cout),
            lambda a, b, r, o: tirx.if_then_else(
                r // ipg == (o % VEC_LANES) // opg,
                args[1][a, b, r % ipg, o],
                tirx.const(0.0, "float32"),
            ),
            name="weight_blocks",
        )
        ipg, opg = ipg2, VEC_LANES
    if pt or pb or pl or pr:
        pad = te.compute(
            (n, h + pt + pb, wd + pl + pr, cin),
            lambda b, y, x, c: tirx.if_then_else(
                tirx.all(y >= pt, y < h + pt, x >= pl, x < wd + pl),
                data[b, y - pt, x - pl, c],
                tirx.const(0.0, "float32"),
            ),
            name="pad",
        )
    else:
        pad = data
    rh = te.reduce_axis((0, kh), name="rh")
    rw = te.reduce_axis((0, kw), name="rw")
    rc = te.reduce_axis((0, ipg), name="rc")
    groups = w.spec.groups // s

    def channel(o: Any) -> Any:
        if groups == 1:
            return rc
        if ipg == 1 and opg == 1:
            return o
        return (o // opg) * ipg + rc

    out = te.compute(
        (n, oh, ow, cout),
        lambda b, y, x, o: te.sum(
            pad[b, y * sh + rh * dh, x * sw + rw * dw, channel(o)] * weight[rh, rw, rc, o],
            axis=[rh, rw, rc],
        ),
        name="conv",
    )
    func = te.create_prim_func([*args, out]).with_attr("global_symbol", "main")
    return tvm.IRModule({"main": func})


def empty_module() -> Any:
    """A kernel that does nothing with its one argument: the harness's per-call floor."""
    import tvm
    from tvm.script import tirx as T

    @T.prim_func
    def main(a: T.Buffer((1,), "float32")) -> None:
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        T.evaluate(0)

    return tvm.IRModule({"main": main})

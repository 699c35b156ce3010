"""Fused conv functions with element-wise blocks before the conv: conv-scheduled and exact."""

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")

from convbench.build import relax as R  # noqa: E402
from convbench.build.schedules import _module, pick_config  # noqa: E402
from convbench.spec.conv import ConvSpec, ConvWorkload  # noqa: E402


def _module_with_side_bn(kernel, cin=32, cout=32, h=6, w=5):
    from tvm import relax
    from tvm.relax import op as O

    rng = np.random.default_rng(0)
    c = lambda a: relax.const(np.asarray(a, np.float32))  # noqa: E731
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, h, w, cin), "float32"))
    y = relax.Var("y", relax.TensorType((1, h, w, cout), "float32"))
    wt = rng.standard_normal((*kernel, cin, cout)).astype(np.float32)
    s1, b1, s2, b2 = (rng.standard_normal(n).astype(np.float32) for n in (cout, cout, cin, cin))
    with bb.function("main", [x, y]):
        with bb.dataflow():
            xb = bb.emit(O.add(O.multiply(x, c(s2)), c(b2)))  # a BN in front of the conv
            pad = kernel[0] // 2
            conv = bb.emit(
                O.nn.conv2d(
                    xb,
                    c(wt),
                    padding=(pad, pad, pad, pad),
                    data_layout="NHWC",
                    kernel_layout="HWIO",
                )
            )
            side = bb.emit(O.add(O.multiply(y, c(s1)), c(b1)))  # another branch's BN
            out = bb.emit_output(O.add(O.add(O.multiply(conv, c(s1)), c(b1)), side))
        bb.emit_func_output(out)
    mod = tvm.IRModule(bb.get().functions)

    def ref(xv, yv):
        xp = np.pad(xv * s2 + b2, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        acc = np.zeros((1, h, w, cout))
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                acc += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + w], wt[i, j])
        return acc * s1 + b1 + (yv * s1 + b1)

    return mod, ref


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3)])
def test_a_conv_with_batch_norms_before_it_gets_the_conv_schedule(kernel):
    mod, ref = _module_with_side_bn(kernel)
    lowered = R.to_primfuncs(mod, fuse=True)
    chosen: dict[str, str] = {}
    scheduled = R.schedule_module(lowered, chosen=chosen)
    conv_funcs = {f: k for f, k in chosen.items() if "conv2d" in f}
    assert conv_funcs and all(k == "conv" for k in conv_funcs.values()), chosen
    ex = tvm.compile(scheduled, target="llvm")
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((1, 6, 5, 32)).astype(np.float32)
    yv = rng.standard_normal((1, 6, 5, 32)).astype(np.float32)
    got = vm["main"](tvm.runtime.tensor(xv), tvm.runtime.tensor(yv)).numpy()
    want = ref(xv.astype(np.float64), yv.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _config(h, w, cin, cout):
    spec = ConvSpec(
        name="c",
        input=(1, h, w, cin),
        kernel=(3, 3),
        out_channels=cout,
        strides=(1, 1),
        padding="SAME",
        count=1,
    )
    return pick_config(_module(ConvWorkload(spec, 1)))


def test_wide_spatial_convs_block_their_input_channels():
    cfg = _config(14, 14, 256, 256)
    assert cfg["icb"] == 32 and cfg["row_axis"] == "ow" and 12 <= cfg["rows"] * cfg["ocv"] <= 24
    assert "icb" not in _config(14, 14, 64, 64)

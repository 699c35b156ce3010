"""The native Relax VM runner: a tiny Relax model exported, run and timed through _core.RelaxVm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MEASUREMENT_KEYS
from convbench import _core
from convbench.native.harness import RunConfig, Timing, ensure_tvm_runtime
from convbench.spec.arrays import aligned_copy, aligned_empty

FAST = RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=5)

SHIFT = (np.arange(16, dtype=np.float32) - 8).reshape(1, 16)
WEIGHT = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
INPUTS = [("x", [2, 16], False)]
OUTPUT = ("y", [2, 8], True)


def reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x + SHIFT, 0) @ WEIGHT


def _export(mod, path: Path) -> Path:
    import tvm
    from convbench.build.target import host_target

    tvm.compile(mod, target=host_target(1)).export_library(str(path))
    return path


def _relax_module(tuple_result: bool = False, fuse: bool = False):
    """main(x) = relu(x + SHIFT) @ WEIGHT, or (that, x + SHIFT) as a tuple."""
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            shifted = bb.emit(relax.op.add(x, relax.const(SHIFT)))
            y = bb.emit(relax.op.matmul(relax.op.nn.relu(shifted), relax.const(WEIGHT)))
            out = bb.emit_output(relax.Tuple([y, shifted]) if tuple_result else y)
        bb.emit_func_output(out)
    mod = bb.get()
    if fuse:
        # tvm.compile's default pipeline does not fuse for llvm; this gives a fused PrimFunc.
        mod = tvm.transform.Sequential(
            [
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
            ]
        )(mod)
    return mod


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import tvm
    from tvm import te

    d = tmp_path_factory.mktemp("relax")
    a = te.placeholder((4,), name="a")
    b = te.compute((4,), lambda i: a[i] + 1, name="b")
    paths = {
        "model": _export(_relax_module(), d / "model.so"),
        "tuple": _export(_relax_module(tuple_result=True), d / "tuple.so"),
        "fused": _export(_relax_module(fuse=True), d / "fused.so"),
        "kernel": _export(tvm.IRModule({"main": te.create_prim_func([a, b])}), d / "kernel.so"),
    }
    ensure_tvm_runtime()
    return paths


@pytest.fixture()
def vm(exported: dict[str, Path]) -> _core.RelaxVm:
    return _core.RelaxVm(str(exported["model"]), INPUTS, OUTPUT)


def _input(seed: int = 1) -> np.ndarray:
    x = aligned_empty((2, 16))
    x[...] = np.random.default_rng(seed).standard_normal((2, 16))
    return x


def test_call_matches_numpy(vm, exported) -> None:
    assert vm.path == str(exported["model"])
    assert vm.entry == "main"
    for seed in (1, 2):
        x = _input(seed)
        out = aligned_empty((2, 8))
        vm.call([x], out)
        np.testing.assert_allclose(out, reference(x), rtol=1e-6, atol=1e-6)


def test_call_reads_the_callers_memory_each_time(vm) -> None:
    # the wrappers borrow the numpy buffers: a change in place shows up in the next call
    x = _input()
    out = aligned_empty((2, 8))
    vm.call([x], out)
    x *= -1
    vm.call([x], out)
    np.testing.assert_allclose(out, reference(x), rtol=1e-6, atol=1e-6)


def test_time_returns_native_samples(vm) -> None:
    m = vm.time([_input()], **FAST.kwargs())
    assert set(m) >= MEASUREMENT_KEYS
    assert len(m["wall_s"]) == len(m["thread_cpu_s"]) == FAST.samples
    t = Timing.from_native(m)
    assert t.iters_per_sample >= 1
    assert t.summary["median"] > 0
    assert t.thread_cpu_summary is not None and t.thread_cpu_summary["median"] > 0


def test_input_checks(vm) -> None:
    x = _input()
    with pytest.raises(ValueError, match=r"'x'.*expected shape \(2, 16\), got \(2, 15\)"):
        vm.check([aligned_empty((2, 15))])
    with pytest.raises(ValueError, match="'x'.*expected dtype float32, got float64"):
        vm.check([x.astype(np.float64)])
    raw = aligned_empty((2 * 16 + 1,))
    misaligned = raw[1:].reshape(2, 16)  # 4 bytes past a 64-byte boundary
    with pytest.raises(ValueError, match="'x'.*64-byte aligned"):
        vm.check([misaligned])
    with pytest.raises(ValueError, match="'x'.*not C-contiguous"):
        vm.check([aligned_empty((16, 2)).T])
    with pytest.raises(ValueError, match="takes 1 arrays, got 2"):
        vm.check([x, x])
    with pytest.raises(TypeError, match="not a numpy array"):
        vm.check([[1.0] * 16])
    # call checks before it runs, and time too
    with pytest.raises(ValueError, match="64-byte aligned"):
        vm.call([misaligned], aligned_empty((2, 8)))
    with pytest.raises(ValueError, match="expected shape"):
        vm.time([aligned_empty((2, 15))], **FAST.kwargs())
    vm.check([x])
    vm.check([aligned_copy(x)])


def test_output_checks(vm) -> None:
    x = _input()
    with pytest.raises(ValueError, match=r"output 'y'.*expected shape \(2, 8\), got \(2, 9\)"):
        vm.call([x], aligned_empty((2, 9)))
    with pytest.raises(ValueError, match="output 'y'.*expected dtype float32, got float64"):
        vm.call([x], np.empty((2, 8)))
    read_only = aligned_empty((2, 8))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="output 'y'.*read-only"):
        vm.call([x], read_only)
    # the output is only copied into: an unaligned one is fine
    raw = aligned_empty((2 * 8 + 1,))
    out = raw[1:].reshape(2, 8)
    vm.call([x], out)
    np.testing.assert_allclose(out, reference(x), rtol=1e-6, atol=1e-6)


def test_output_spec_must_match_the_result(exported) -> None:
    vm = _core.RelaxVm(str(exported["model"]), INPUTS, ("y", [8, 2], True))
    with pytest.raises(RuntimeError, match=r"returned shape \(2, 8\), the output spec 'y' says"):
        vm.call([_input()], aligned_empty((8, 2)))


def test_tuple_result_is_refused(exported) -> None:
    vm = _core.RelaxVm(str(exported["tuple"]), INPUTS, OUTPUT)
    with pytest.raises(RuntimeError, match="tuple of 2 values"):
        vm.call([_input()], aligned_empty((2, 8)))


def test_vm_errors_do_not_abort(exported) -> None:
    # the spec is wrong for the model: the VM's own shape check fails, and that is an exception
    vm = _core.RelaxVm(str(exported["model"]), [("x", [3, 16], False)], OUTPUT)
    x = aligned_empty((3, 16))
    x[...] = 0
    with pytest.raises(RuntimeError, match="function 'main' failed"):
        vm.call([x], aligned_empty((2, 8)))
    with pytest.raises(RuntimeError, match="failed while timed"):
        vm.time([x], **FAST.kwargs())


def test_load_errors_name_what_is_wrong(exported, tmp_path) -> None:
    missing = tmp_path / "missing.so"
    with pytest.raises(RuntimeError, match=f"cannot load Relax VM executable.*{missing}"):
        _core.RelaxVm(str(missing), INPUTS, OUTPUT)
    not_tvm = tmp_path / "not_tvm.so"
    not_tvm.write_text("hello")
    with pytest.raises(RuntimeError, match=f"cannot load Relax VM executable.*{not_tvm}"):
        _core.RelaxVm(str(not_tvm), INPUTS, OUTPUT)
    kernel = str(exported["kernel"])
    with pytest.raises(RuntimeError, match=f"'{kernel}' has no function 'vm_load_executable'"):
        _core.RelaxVm(kernel, [("a", [4], False)], ("b", [4], True))
    with pytest.raises(RuntimeError, match="has no function 'predict'"):
        _core.RelaxVm(str(exported["model"]), INPUTS, OUTPUT, entry="predict")
    with pytest.raises(ValueError, match="'y' is not marked as an output"):
        _core.RelaxVm(str(exported["model"]), INPUTS, ("y", [2, 8], False))
    with pytest.raises(ValueError, match="input 'x' is marked as an output"):
        _core.RelaxVm(str(exported["model"]), [("x", [2, 16], True)], OUTPUT)


def test_primfunc_of_a_relax_library_runs_as_a_kernel(exported) -> None:
    # The PrimFuncs compiled into a Relax executable live in its imported library module, which
    # TvmKernel's GetFunction(name, query_imports=true) reaches: one can be timed on its own.
    # The constant SHIFT became the fused function's second parameter.
    k = _core.TvmKernel(
        str(exported["fused"]),
        [("x", [2, 16], False), ("shift", [1, 16], False), ("out", [2, 16], True)],
        entry="fused_add_relu",
    )
    x = _input()
    out = aligned_empty((2, 16))
    k.call([x, aligned_copy(SHIFT), out])
    np.testing.assert_allclose(out, np.maximum(x + SHIFT, 0), rtol=1e-6)

"""The TVM target for this host: LLVM's name for the CPU, never a silent `generic`."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from ..cpus import allowed_cpus, cpu_model

__all__ = [
    "TRIPLE",
    "TargetError",
    "host_cpu_name",
    "host_target",
    "host_triple",
    "llvm_target",
    "with_cores",
]

# The wheel's default triple is a conda one; the kernels are plain Linux shared objects.
TRIPLE = "x86_64-linux-gnu"


class TargetError(RuntimeError):
    """The host CPU cannot be turned into a TVM target that is not `generic`."""


@cache
def host_cpu_name() -> str:
    """LLVM's name for the host CPU, as TVM's LLVM sees it (e.g. 'znver5', 'sapphirerapids')."""
    import tvm  # noqa: F401  (registers the LLVM functions)
    import tvm_ffi

    override = os.environ.get("CONVBENCH_MCPU")
    name = override or str(tvm_ffi.get_global_func("tvm.codegen.llvm.GetHostCPUName")())
    valid = tvm_ffi.get_global_func("target.llvm_is_valid_cpu")
    if not name or name == "generic" or not valid(name, TRIPLE):
        raise TargetError(
            f"TVM's LLVM does not know this CPU ({cpu_model()!r}, LLVM name {name!r}); kernels "
            "built for 'generic' would be slow. Set CONVBENCH_MCPU to the closest LLVM CPU name "
            "(e.g. x86-64-v4 for any AVX-512 CPU, x86-64-v3 for AVX2)."
        )
    return name


def host_triple() -> str:
    """The triple kernels for this host are built for: a plain Linux one on x86-64, else what
    TVM's LLVM says."""
    import platform

    if platform.machine() in ("x86_64", "AMD64"):
        return TRIPLE
    import tvm  # noqa: F401
    import tvm_ffi

    return str(tvm_ffi.get_global_func("target.llvm_get_system_triple")())


def llvm_target(mcpu: str, triple: str, num_cores: int) -> Any:
    """An LLVM target; `num-cores` is what MetaSchedule assumes when tuning (and part of the
    key a tuned schedule is stored under)."""
    import tvm

    return tvm.target.Target(
        {"kind": "llvm", "mcpu": mcpu, "mtriple": triple, "num-cores": max(1, int(num_cores))}
    )


def with_cores(target: Any, num_cores: int) -> Any:
    """`target` (an llvm_target) for another thread count."""
    return llvm_target(str(target.attrs["mcpu"]), str(target.attrs["mtriple"]), num_cores)


def host_target(num_cores: int | None = None) -> Any:
    """The TVM target for this host."""
    cores = num_cores if num_cores is not None else len(allowed_cpus())
    return llvm_target(host_cpu_name(), TRIPLE, cores)

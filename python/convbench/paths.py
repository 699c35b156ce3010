"""The overhead ladder: every path (rung) a cell can measure, defined once.

A rung is one way of calling the same computation, from the bare kernel up to the Python calls a
user writes. Every table that used to list paths (the run's cells, the ladder's Python paths, what a
TF path wraps, the conv-time prediction, partsearch's defaults, the empty-kernel floor) is derived
from `RUNGS` here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_PATHS",
    "BACKENDS",
    "COLD_PATHS",
    "MODEL_PATHS",
    "PATHS",
    "RUNGS",
    "Backend",
    "Rung",
    "ladder_paths",
    "parse_paths",
    "partsearch_paths",
    "rung",
    "wraps",
]

CONV = frozenset({"conv"})
MODEL = frozenset({"model"})
BOTH = CONV | MODEL


@dataclass(frozen=True)
class Rung:
    """One path of the ladder.

    depth: "kernel" (the kernel's own time, reported by oneDNN), "native" (a C++ loop calling the
    framework's native entry point, no Python) or "wrapper" (a path that adds something on top of
    a native rung: a Cython or Python loop, TVM's own evaluator, TF's Python APIs).
    wraps: for a wrapper, the native rung it adds to.
    kinds: which workloads have it: "conv" (a single conv) and/or "model" (a model cut).
    """

    backend: str
    name: str
    kinds: frozenset[str]
    depth: str
    wraps: str | None = None
    is_python: bool = False
    partsearch: bool = False  # measured by `convbench partsearch` by default
    reference: bool = False  # an outside timing of the rung it names, not a layer around it
    help: str = ""

    @property
    def id(self) -> str:
        return f"{self.backend}/{self.name}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.backend, self.name)


# In display order.
RUNGS: tuple[Rung, ...] = (
    Rung(
        "tvm",
        "native",
        BOTH,
        "native",
        partsearch=True,
        help="the exported kernel (or Relax VM) called from the C++ timing loop",
    ),
    Rung(
        "tvm",
        "cython",
        CONV,
        "wrapper",
        wraps="native",
        help="the same kernel from a compiled Cython loop over tvm-ffi's C ABI",
    ),
    Rung(
        "tvm",
        "python",
        BOTH,
        "wrapper",
        wraps="native",
        is_python=True,
        partsearch=True,
        help="the same kernel from a Python loop through tvm-ffi",
    ),
    Rung(
        "tvm",
        "evaluator",
        CONV,
        "wrapper",
        wraps="native",
        reference=True,
        help="TVM's own time_evaluator: an outside reference for native",
    ),
    Rung(
        "tf",
        "kernel",
        CONV,
        "kernel",
        partsearch=True,
        help="oneDNN's own execution time for the conv primitive inside TF",
    ),
    Rung(
        "tf",
        "native",
        CONV,
        "native",
        help="Conv2D through TF's C API from the C++ loop (TFE_Execute)",
    ),
    Rung(
        "tf",
        "native-graph",
        BOTH,
        "native",
        partsearch=True,
        help="a prebuilt graph run with TF_SessionRun from the C++ loop",
    ),
    Rung(
        "tf",
        "eager",
        BOTH,
        "wrapper",
        wraps="native",
        is_python=True,
        partsearch=True,
        help="tf.nn ops from a Python loop",
    ),
    Rung(
        "tf",
        "function",
        BOTH,
        "wrapper",
        wraps="native",
        is_python=True,
        help="the same inside a traced tf.function",
    ),
    Rung(
        "tf",
        "session",
        BOTH,
        "wrapper",
        wraps="native-graph",
        is_python=True,
        partsearch=True,
        help="tf.compat.v1 Session.run with a feed_dict",
    ),
    Rung(
        "tf",
        "session-feedless",
        CONV,
        "wrapper",
        wraps="native-graph",
        is_python=True,
        help="the same graph with input and weights in variables",
    ),
    Rung("tvm", "native-unfused", MODEL, "native", help="the Relax build without operator fusion"),
    Rung("tf", "native-graph-noopt", MODEL, "native", help="native-graph with grappler off"),
    Rung(
        "tf",
        "session-noopt",
        MODEL,
        "wrapper",
        wraps="native-graph",
        is_python=True,
        help="session with grappler off",
    ),
    Rung(
        "tf",
        "session-no-onednn",
        MODEL,
        "wrapper",
        wraps="native-graph",
        is_python=True,
        help="session with TF_ENABLE_ONEDNN_OPTS=0",
    ),
)

_BY_KEY = {r.key: r for r in RUNGS}

# (backend, path) pairs: a single conv's cells, a model cut's cells, and every one.
PATHS: tuple[tuple[str, str], ...] = tuple(r.key for r in RUNGS if "conv" in r.kinds)
MODEL_PATHS: tuple[tuple[str, str], ...] = tuple(r.key for r in RUNGS if "model" in r.kinds)
ALL_PATHS: tuple[tuple[str, str], ...] = tuple(r.key for r in RUNGS)


@dataclass(frozen=True)
class Backend:
    """Which rungs stand for a framework's conv time and for its model time (the conv-time
    prediction: TVM's kernel is its native call; TF's is oneDNN's profile)."""

    name: str
    conv_rung: str
    model_rung: str


BACKENDS: dict[str, Backend] = {
    "tvm": Backend("tvm", "native", "native"),
    "tf": Backend("tf", "kernel", "native-graph"),
}


def rung(backend: str, name: str) -> Rung:
    return _BY_KEY[(backend, name)]


def ladder_paths(backend: str) -> tuple[str, ...]:
    """The conv rungs whose time is reported as added over `backend`'s native call."""
    return tuple(
        r.name for r in RUNGS if r.backend == backend and "conv" in r.kinds and r.depth == "wrapper"
    )


def wraps(backend: str, references: bool = True) -> dict[str, str]:
    """{wrapper path: the native path it adds to} for `backend`'s conv rungs (with the
    outside references, such as TVM's evaluator, unless `references` is False)."""
    return {
        r.name: r.wraps
        for r in RUNGS
        if r.backend == backend
        and "conv" in r.kinds
        and r.wraps is not None
        and (references or not r.reference)
    }


# The rungs that can run with cold caches (`--cache cold`): the ones whose loop can rotate
# through copies of the call's arrays.
COLD_PATHS: tuple[tuple[str, str], ...] = (("tvm", "native"), ("tf", "kernel"), ("tf", "eager"))


def partsearch_paths() -> tuple[tuple[str, str], ...]:
    return tuple(r.key for r in RUNGS if r.partsearch)


def parse_paths(text: str) -> tuple[tuple[str, str], ...]:
    """'tvm/native,tf/kernel' -> the (backend, path) pairs; ValueError naming unknown ones."""
    known = {r.id: r.key for r in RUNGS}
    wanted = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in known]
    if unknown or not wanted:
        named = ", ".join(unknown) if unknown else repr(text)
        raise ValueError(f"unknown path(s) {named}; known: {', '.join(known)}")
    return tuple(known[v] for v in dict.fromkeys(wanted))

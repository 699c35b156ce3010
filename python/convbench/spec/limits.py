"""The bounds a shapes file and a run are held to, in one place: what TVM can index, how big a
file and a model description may be, and how many expanded YAML values a file may hold."""

from __future__ import annotations

__all__ = [
    "INT32_MAX",
    "MAX_BLOCKS",
    "MAX_CONVS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_MODEL_NODES",
    "MAX_STAGES",
    "MAX_UNITS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "check_int32",
]

# TVM indexes a tensor with int32: no tensor may hold more elements than this, at any batch.
INT32_MAX = 2**31 - 1

# A hand-written shapes file is a few kB, one `convbench extract` writes holds a node table (about
# 150 bytes a node); a bigger one is refused before it is read (at this size the C YAML parser
# and the checks take a few seconds).
MAX_FILE_BYTES = 4 << 20
MAX_CONVS = 1024  # entries of the convs section
MAX_YAML_DEPTH = 32  # nesting of YAML collections (the shipped file nests 4 deep)
MAX_YAML_VALUES = 100_000  # values after aliases are expanded (an alias bomb expands to billions)

# The model description expands to nodes: these keep it to what a build can handle.
MAX_STAGES = 32
MAX_UNITS = 256  # residual units per stage (or in the stem)
MAX_DEPTH = 64  # convs per residual unit or expand branch
MAX_MODEL_NODES = 20_000
MAX_BLOCKS = 256  # named blocks, and partsearch nodes


def check_int32(tensors: dict[str, int]) -> str | None:
    """The first of {what: element count} that TVM cannot index, as a message; None if none."""
    for what, n in tensors.items():
        if n > INT32_MAX:
            return (
                f"the {what} would have {n:,} elements; TVM indexes tensors with int32 "
                f"(at most {INT32_MAX:,})"
            )
    return None

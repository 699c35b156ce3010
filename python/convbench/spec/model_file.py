"""A user's own model file as shapes.yaml's `model` section: where the file is, its input, and the
table of its nodes that `convbench extract` wrote (name, op type, the nodes it reads, its output
shape at batch 1, and for a convolution the conv it computes).

The table is what lets the rest of convbench (cuts by node name, `convbench nodes`, partsearch,
memory estimates, FLOPs) work without loading TensorFlow; the file's digest ties the table to the
file it was read from, and a worker that loads the file checks it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .conv import ConvSpec
from .errors import SpecError, quote
from .graph import CutSpec, Graph, Node, check_cuts
from .limits import MAX_BLOCKS, MAX_MODEL_NODES

__all__ = ["FORMATS", "ConvFields", "ModelFileSpec", "NodeSpec", "file_digest", "model_format"]

FORMATS = ("graphdef", "savedmodel", "keras")
NodeName = Annotated[str, Field(min_length=1, max_length=512)]


class ConvFields(BaseModel):
    """The conv a conv node computes (a ConvSpec without name and count), its padding folded
    from a separate Pad node and its dilation from a SpaceToBatchND/BatchToSpaceND pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: tuple[int, int, int, int]
    kernel: tuple[int, int]
    out_channels: int
    strides: tuple[int, int] = (1, 1)
    padding: str | tuple[tuple[int, int], tuple[int, int]] = "SAME"
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: NodeName
    op: str = Field(min_length=1, max_length=128)
    inputs: list[NodeName] = Field(default_factory=list)
    shape: list[int] = Field(default_factory=list)
    weights: int = Field(ge=0, default=0)  # elements of the constants the node reads
    conv: ConvFields | None = None


class ModelFileSpec(BaseModel):
    """shapes.yaml's `model` section for a model file (written by `convbench extract`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    file: str = Field(min_length=1, max_length=4096)
    format: Literal["graphdef", "savedmodel", "keras"]
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: tuple[int, ...] = Field(min_length=2, max_length=8)
    input_node: NodeName
    output_node: NodeName
    nodes: list[NodeSpec] = Field(min_length=2, max_length=MAX_MODEL_NODES)
    blocks: list[CutSpec] = Field(default_factory=list, max_length=MAX_BLOCKS)
    partsearch: list[NodeName] = Field(default_factory=list, max_length=MAX_BLOCKS)
    note: str = ""
    _graph: Graph | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> ModelFileSpec:
        if self.input[0] != 1 or any(d < 1 for d in self.input):
            raise ValueError(
                f"field 'input': expected the input's shape at batch 1, got {list(self.input)}"
            )
        seen: set[str] = set()
        for i, n in enumerate(self.nodes):
            if n.name in seen:
                raise ValueError(f"nodes[{i}]: two nodes are named {quote(n.name)}")
            for src in n.inputs:
                if src not in seen:
                    raise ValueError(
                        f"nodes[{i}] ({quote(n.name)}): input {quote(src)} is not an earlier node"
                        " (the table lists nodes in execution order)"
                    )
            seen.add(n.name)
        if self.nodes[0].name != self.input_node:
            raise ValueError(
                f"field 'input_node': {quote(self.input_node)} must be the first node, "
                f"not {quote(self.nodes[0].name)}"
            )
        if self.output_node not in seen:
            raise ValueError(f"field 'output_node': no node is named {quote(self.output_node)}")
        check_cuts(self.graph, self.name, self.blocks, self.partsearch)
        return self

    @property
    def graph(self) -> Graph:
        """The node table as a Graph (kinds: `input`, `conv`, or the TF op type), built once."""
        if self._graph is None:
            nodes = []
            for i, n in enumerate(self.nodes):
                if i == 0:
                    nodes.append(Node(n.name, "input", (), tuple(n.shape)))
                    continue
                conv = None
                if n.conv is not None:
                    try:
                        conv = ConvSpec(
                            name=_conv_name(n.name), count=1, **n.conv.model_dump(mode="python")
                        )
                    except ValidationError as e:
                        msg = str(e.errors()[0].get("msg", "invalid")).removeprefix("Value error, ")
                        raise SpecError(f"node {quote(n.name)}: conv: {msg}") from None
                kind = "conv" if conv is not None else n.op
                nodes.append(
                    Node(n.name, kind, tuple(n.inputs), tuple(n.shape), conv, weights=n.weights)
                )
            self._graph = Graph(
                self.name, nodes, self.input_node, self.output_node, model_input=self.input_node
            )
        return self._graph

    @property
    def path(self) -> Path:
        return Path(self.file)


def _conv_name(node: str) -> str:
    out = "".join(c if c.isalnum() or c in "_.-" else "." for c in node)
    return out[:128] or "conv"


def model_format(path: Path) -> str:
    """graphdef, savedmodel or keras, from what the path is; SpecError when it is none."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise SpecError(f"{path}: a directory without saved_model.pb is not a SavedModel")
    if not path.is_file():
        raise SpecError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if path.name == "saved_model.pb":
        raise SpecError(f"{path}: this is a SavedModel's graph; give its directory, {path.parent}")
    if suffix in (".pb", ".graphdef"):
        return "graphdef"
    raise SpecError(
        f"{path}: not a model convbench reads (a frozen GraphDef .pb, a SavedModel directory, "
        "or a Keras .keras/.h5 file)"
    )


def file_digest(path: Path) -> str:
    """sha256 of a model file, or of every file of a SavedModel directory (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def resolve_file(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """The section with `file` made absolute, relative to the shapes file's directory."""
    f = raw.get("file")
    if isinstance(f, str) and f and not Path(f).is_absolute() and source and source[0] != "<":
        return {**raw, "file": str((Path(source).parent / f).resolve())}
    return raw

"""The reconstructed RCNN-CTC model: its description (shapes.yaml's `model` section), the graph of
named nodes it expands to, seeded weights, and cuts of that graph between two named nodes.

The original RCNN_ctcV3 is not available. The stand-in is a residual CNN whose convolution
histogram equals the one the research log dumped, with the log's node names at its cut points.
TensorFlow (frameworks.tf_model) and TVM Relax (build.relax) are both built from the `Graph` here,
node by node, with the same weights, so the two frameworks run the same computation.

Node kinds (NHWC tensors, batch 1 in the shapes kept here):
  input   the graph's input
  conv    Conv2D, HWIO weights, no bias (a ConvSpec says kernel, strides, padding)
  bn      inference batch norm in the log's form: (x - mean) * (gamma * rsqrt(var + eps)) + beta
  relu, add (two inputs), bias_add
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .conv import ConvSpec, ConvWorkload
from .errors import SpecError
from .graph import CutSpec, Graph, Node, check_cuts
from .limits import MAX_BLOCKS, MAX_DEPTH, MAX_MODEL_NODES, MAX_STAGES, MAX_UNITS, check_int32
from .model_file import ModelFileSpec, resolve_file

__all__ = [
    "AnyModelSpec",
    "Graph",
    "ModelSpec",
    "ModelWorkload",
    "model_workloads",
    "Node",
    "histogram_mismatch",
    "parse_model",
]

Pair = tuple[int, int]


class StemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: int = Field(gt=0)
    kernel: Pair = (3, 3)
    units: int = Field(ge=0, le=MAX_UNITS, default=1)
    depth: int = Field(ge=1, le=MAX_DEPTH, default=2)


class StageSpec(BaseModel):
    """An `expand_conv<i>` unit (stride and channel change, 1x1 projection shortcut) followed by
    `conv_block<i>`: `units` residual units of `depth` 3x3 convs each."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: int = Field(gt=0)
    strides: Pair = (1, 1)
    expand_depth: int = Field(ge=1, le=MAX_DEPTH)
    units: int = Field(ge=0, le=MAX_UNITS)
    depth: int = Field(ge=1, le=MAX_DEPTH)
    kernel: Pair = (3, 3)


class LogitsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    classes: int = Field(gt=0)
    kernel: Pair
    padding: str = "VALID"


class ModelSpec(BaseModel):
    """shapes.yaml's `model` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    input: tuple[int, int, int, int]
    seed: int = Field(ge=0, le=2**64 - 1, default=0)
    bn_epsilon: float = Field(gt=0, le=1, default=1e-3, allow_inf_nan=False)
    stem: StemSpec
    stages: list[StageSpec] = Field(min_length=1, max_length=MAX_STAGES)
    logits: LogitsSpec
    blocks: list[CutSpec] = Field(default_factory=list, max_length=MAX_BLOCKS)
    partsearch: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=MAX_BLOCKS
    )
    note: str = ""
    _graph: Graph | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cuts_exist(self) -> ModelSpec:
        nodes = self.node_count
        if nodes > MAX_MODEL_NODES:
            raise ValueError(
                f"the stem and stages expand to {nodes:,} nodes, more than the {MAX_MODEL_NODES:,} "
                "a model may have: fewer units, depth or stages"
            )
        problem = check_int32({"input": _prod(self.input)})
        if problem is not None:
            raise ValueError(f"field 'input': {problem}")
        check_cuts(self.graph, self.name, self.blocks, self.partsearch)
        return self

    @property
    def node_count(self) -> int:
        """How many nodes the description expands to, counted without building them."""
        s = self.stem
        n = 1 + 3 + s.units * 3 * s.depth  # input; stem conv, bn, relu; units (branch + add)
        for st in self.stages:  # expand branch, shortcut conv + bn, add; units
            n += 3 * st.expand_depth - 1 + 3 + st.units * 3 * st.depth
        return n + 2  # logits conv and bias add

    @property
    def graph(self) -> Graph:
        """The graph this section expands to, built once per ModelSpec."""
        if self._graph is None:
            b = _Builder(self)
            self._graph = Graph(self.name, b.nodes, "input", b.last, self.seed, self.bn_epsilon)
        return self._graph


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class _Builder:
    """Expands a ModelSpec into nodes. Add nodes are numbered by one counter over the model, as
    Keras numbers its Add layers (add, add_1, add_2, ...): that is where the log's names
    `expand_conv1/add_1`, `conv_block1/unit1/add_2`, ... `expand_conv4/add_17` come from."""

    def __init__(self, m: ModelSpec) -> None:
        self.m = m
        self.nodes: list[Node] = [Node("input", "input", (), tuple(m.input))]
        self.shapes: dict[str, tuple[int, ...]] = {"input": tuple(m.input)}
        self.last = "input"
        self.adds = 0
        self._build()

    def _emit(self, node: Node) -> str:
        if node.name in self.shapes:
            raise SpecError(f"model: two nodes are named '{node.name}'")
        self.nodes.append(node)
        self.shapes[node.name] = node.shape
        self.last = node.name
        return node.name

    def _shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def conv(
        self, scope: str, x: str, cout: int, kernel: Pair, strides: Pair = (1, 1), pad="SAME"
    ) -> str:
        shape = self._shape(x)
        try:
            spec = ConvSpec(
                name=scope.replace("/", "."),
                input=(1, *shape[1:]),
                kernel=kernel,
                out_channels=cout,
                strides=strides,
                padding=pad,
                count=1,
            )
        except ValidationError as e:
            first = e.errors()[0]
            msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
            raise SpecError(f"node '{scope}' (input {shape[1:]}): {msg}") from None
        out = ConvWorkload(spec, 1).output_shape
        return self._emit(Node(scope, "conv", (x,), tuple(out), spec, (f"{scope}/weights",)))

    def bn(self, scope: str, x: str) -> str:
        params = tuple(f"{scope}/{p}" for p in ("gamma", "beta", "moving_mean", "moving_variance"))
        return self._emit(Node(scope, "bn", (x,), self._shape(x), None, params))

    def relu(self, scope: str, x: str) -> str:
        return self._emit(Node(scope, "relu", (x,), self._shape(x)))

    def add(self, scope: str, a: str, b: str) -> str:
        name = f"{scope}/add" + (f"_{self.adds}" if self.adds else "")
        self.adds += 1
        return self._emit(Node(name, "add", (a, b), self._shape(a)))

    def branch(self, scope: str, x: str, cout: int, depth: int, kernel: Pair, strides: Pair):
        """depth x (conv, bn, relu), the last without relu and with a small-gamma BN."""
        for i in range(1, depth + 1):
            x = self.conv(f"{scope}/conv{i}", x, cout, kernel, strides if i == 1 else (1, 1))
            last = i == depth
            x = self.bn(f"{scope}/bn_last" if last else f"{scope}/bn{i}", x)
            if not last:
                x = self.relu(f"{scope}/relu{i}", x)
        return x

    def _build(self) -> None:
        m = self.m
        x = self.conv("stem/conv", "input", m.stem.channels, m.stem.kernel)
        x = self.relu("stem/relu", self.bn("stem/bn", x))
        for u in range(1, m.stem.units + 1):
            y = self.branch(
                f"stem/unit{u}", x, m.stem.channels, m.stem.depth, m.stem.kernel, (1, 1)
            )
            x = self.add(f"stem/unit{u}", y, x)
        for i, s in enumerate(m.stages, start=1):
            scope = f"expand_conv{i}"
            y = self.branch(scope, x, s.channels, s.expand_depth, s.kernel, s.strides)
            sc = self.conv(f"{scope}/shortcut", x, s.channels, (1, 1), s.strides)
            sc = self.bn(f"{scope}/shortcut_bn", sc)
            x = self.add(scope, y, sc)
            for u in range(1, s.units + 1):
                uscope = f"conv_block{i}/unit{u}"
                y = self.branch(uscope, x, s.channels, s.depth, s.kernel, (1, 1))
                x = self.add(uscope, y, x)
        lg = m.logits
        c = self.conv(f"{lg.name}/Conv2D", x, lg.classes, lg.kernel, (1, 1), lg.padding)
        self._emit(
            Node(f"{lg.name}/BiasAdd", "bias_add", (c,), self._shape(c), None, (f"{lg.name}/bias",))
        )


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" not in str(p):
            text = str(p) if len(str(p)) <= 40 else str(p)[:37] + "..."
            out += ("." if out else "") + text
    return out


def parse_model(raw: Any, source: str = "<shapes>") -> AnyModelSpec:
    """Validate a `model` mapping: the stand-in's description, or (with a `file` key) a model
    file's section, its path relative to the shapes file. SpecError names the file and field
    (model.stages[1].units)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: model: expected a mapping, got {type(raw).__name__}")
    try:
        if "file" in raw:
            return ModelFileSpec.model_validate(resolve_file(raw, source))
        return ModelSpec.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors()[:5]:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown key"
            field = _where(tuple(err.get("loc", ())))
            lines.append(f"{source}: model" + (f".{field}" if field else "") + f": {msg}")
        raise SpecError("\n".join(lines)) from None
    except SpecError as e:
        raise SpecError(f"{source}: model: {e}") from None


def histogram_mismatch(g: Graph, convs: list[ConvSpec]) -> list[str]:
    """Where the model's conv histogram differs from the convs section (output shape -> count)."""
    want = Counter()
    for c in convs:
        want[ConvWorkload(c, 1).output_shape] += c.count
    got = g.histogram
    out = []
    for shape in sorted(set(want) | set(got)):
        if want[shape] != got[shape]:
            out.append(f"{shape}: convs section says {want[shape]}, the model has {got[shape]}")
    return out


AnyModelSpec = ModelSpec | ModelFileSpec


def model_spec_from_dict(d: dict[str, Any]) -> AnyModelSpec:
    """A model section as problem() wrote it (by_alias), back."""
    if "file" in d:
        return ModelFileSpec.model_validate(d)
    return ModelSpec.model_validate(d)


@dataclass(frozen=True)
class ModelWorkload:
    """A cut of the model at a batch size: kind "block" (a named block), "model" (input to
    output) or "prefix" (input to a partsearch node)."""

    name: str
    kind: str
    spec: AnyModelSpec
    start: str | None
    stop: str
    batch: int

    @cached_property
    def graph(self) -> Graph:
        return self.spec.graph.cut(self.start, self.stop)

    @property
    def key(self) -> str:
        return f"{self.name}@b{self.batch}"

    @property
    def from_file(self) -> bool:
        """A cut of a user's model file (not of the stand-in's description)."""
        return isinstance(self.spec, ModelFileSpec)

    @property
    def flops(self) -> int:
        return self.graph.flops(self.batch)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.graph.input_shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.graph.output_shape[1:])

    @property
    def rtol(self) -> float:
        """The issue's bar: 1e-4 of the output's magnitude for a part, 1e-3 for the whole model."""
        return 1e-3 if self.kind == "model" else 1e-4

    def problem(self) -> dict[str, Any]:
        return {
            "model": self.spec.model_dump(mode="json", by_alias=True),
            "from": self.start,
            "to": self.stop,
            "batch": self.batch,
        }

    def to_task(self) -> dict[str, Any]:
        """What a worker process needs to rebuild this workload (workload_from_task)."""
        return {"name": self.name, "kind": self.kind, **self.problem()}

    @classmethod
    def from_task(cls, m: dict[str, Any]) -> ModelWorkload:
        return cls(
            m["name"],
            m["kind"],
            model_spec_from_dict(m["model"]),
            m["from"],
            m["to"],
            int(m["batch"]),
        )

    def describe(self) -> dict[str, Any]:
        g = self.graph
        return {
            "name": self.name,
            "kind": self.kind,
            "batch": self.batch,
            "model": self.spec.name,
            "from": self.start or g.input,
            "to": self.stop,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "nodes": len(g.nodes) - 1,
            "convs": len(g.convs()),
            "flops": self.flops,
            "rtol": self.rtol,
        }


def model_workloads(
    spec: AnyModelSpec,
    batches: list[int],
    cuts: list[tuple[str | None, str]] | None = None,
    partsearch: bool = False,
) -> list[ModelWorkload]:
    """The default set: the named blocks and the whole model; or the given from/to cuts; or
    (partsearch) the prefixes from the input to each partsearch node."""
    items: list[tuple[str, str, str | None, str]] = []
    g = spec.graph
    if partsearch:
        for node in spec.partsearch:
            items.append((f"to:{node}", "prefix", None, node))
    elif cuts:
        for start, stop in cuts:
            items.append((f"{start or g.input}..{stop}", "block", start, stop))
    else:
        items += [(b.name, "block", b.start, b.stop) for b in spec.blocks]
        items.append((spec.name, "model", None, g.output))
    out = []
    for name, kind, start, stop in items:
        g.cut(start, stop)  # a bad pair fails here, with its message
        out += [ModelWorkload(name, kind, spec, start, stop, b) for b in batches]
    return out

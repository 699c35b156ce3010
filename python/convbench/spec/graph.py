"""A model as named nodes in execution order, and cuts of it between two named nodes: what the
stand-in (spec.model) and a user's model file (spec.model_file) both expand to.

Node kinds: `input` (the node that is fed), `conv` (a ConvSpec says what it computes), and then
for the stand-in bn, relu, add, bias_add, for a model file TF's op type.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .arrays import aligned_empty
from .conv import ConvSpec, ConvWorkload
from .errors import SpecError, did_you_mean, quote

__all__ = ["CutSpec", "Graph", "Node", "check_cuts"]


class CutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    start: str = Field(alias="from", min_length=1, max_length=512)
    stop: str = Field(alias="to", min_length=1, max_length=512)


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # output shape at batch 1 (NHWC)
    conv: ConvSpec | None = None  # conv nodes: the conv at batch 1
    params: tuple[str, ...] = ()  # names of this node's weights (see Graph.weights)
    weights: int = 0  # a model file's node: elements of the constants it reads


@dataclass
class Graph:
    """Named nodes in execution order; `input` is the name of the node that is fed."""

    name: str
    nodes: list[Node]
    input: str
    output: str
    seed: int = 0
    bn_epsilon: float = 1e-3
    model_input: str = "input"  # the whole model's input (a cut's input is another node)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n.name: i for i, n in enumerate(self.nodes)}

    # --- construction -------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self.nodes[self._index[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.node(self.input).shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.node(self.output).shape

    def evaluate(self, x: Any, op: Callable[[Node, list[Any]], Any]) -> Any:
        """Walks the nodes in order with `x` at the input: `op(node, its inputs' values)` gives
        each node's value (a tensor, or a framework's expression for it); returns the output's."""
        vals = {self.input: x}
        for n in self.nodes:
            if n.kind != "input":
                vals[n.name] = op(n, [vals[i] for i in n.inputs])
        return vals[self.output]

    def convs(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "conv"]

    def flops(self, batch: int = 1) -> int:
        """Conv FLOPs only (2 per multiply-add), as for a single conv workload."""
        return sum(ConvWorkload(n.conv, batch).flops for n in self.convs() if n.conv is not None)

    # --- cuts ---------------------------------------------------------------------------------
    def _unknown(self, name: str) -> SpecError:
        hint = did_you_mean(name, self.names)
        return SpecError(
            f"model '{self.name}' has no node named {quote(name)}{hint} "
            f"(`convbench nodes --shapes <file>` lists them)"
        )

    def cut(self, start: str | None, stop: str) -> Graph:
        """The subgraph computing `stop` from `start` (None: the graph's input). `start` becomes
        the new input; every node between must depend on nothing computed before `start`."""
        start = start or self.input
        for n in (start, stop):
            if not isinstance(n, str) or n not in self._index:
                raise self._unknown(n)
        i0, i1 = self._index[start], self._index[stop]
        if i1 <= i0:
            raise SpecError(
                f"cannot cut from '{start}' to '{stop}': '{stop}' comes "
                + ("at the same place" if i1 == i0 else "before")
                + f" '{start}' in the model (node {i1} vs {i0}); give the earlier node first"
            )
        needed: set[str] = set()
        stack = [stop]
        while stack:
            name = stack.pop()
            if name in needed or name == start:
                continue
            node = self.node(name)
            if node.kind == "input":
                raise SpecError(
                    f"cannot cut from '{start}' to '{stop}': '{start}' does not lead to "
                    f"'{stop}', or a node between reads a tensor computed before '{start}'"
                )
            needed.add(name)
            for src in node.inputs:
                if self._index[src] < i0:
                    raise SpecError(
                        f"cannot cut from '{start}' to '{stop}': '{name}' also reads '{src}', "
                        f"which is computed before '{start}' (cut at a unit's output instead)"
                    )
                stack.append(src)
        start_node = self.node(start)
        nodes = [Node(start, "input", (), start_node.shape)]
        nodes += [n for n in self.nodes if n.name in needed]
        return Graph(self.name, nodes, start, stop, self.seed, self.bn_epsilon, self.model_input)

    # --- weights ------------------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        """Seeded weights for every node of this graph. Each node's weights depend only on the
        seed and the node's name, so a cut gets exactly the weights of the full model."""
        out: dict[str, np.ndarray] = {}
        for n in self.nodes:
            out.update(_node_weights(n, self.seed))
        return out

    def input_data(self, batch: int = 1, seed: int | None = None) -> np.ndarray:
        """A seeded input at `batch`: the model's image in [0, 1), or for a cut, the same
        distribution as the activations it replaces would be unknown, so a unit-scale normal."""
        shape = (batch, *self.input_shape[1:])
        rng = np.random.default_rng([self.seed if seed is None else seed, 7])
        x = aligned_empty(shape)
        if self.input == self.model_input:
            x[...] = rng.uniform(0.0, 1.0, size=shape)
        else:
            x[...] = rng.standard_normal(size=shape)
        return x

    @cached_property
    def histogram(self) -> Counter[tuple[int, ...]]:
        """How often each conv output shape (batch 1) occurs, as the research log counted them."""
        return Counter(
            ConvWorkload(n.conv, 1).output_shape if n.conv is not None else n.shape
            for n in self.convs()
        )


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _node_weights(n: Node, seed: int) -> dict[str, np.ndarray]:
    r = _rng(seed, n.name)
    if n.kind == "conv":
        assert n.conv is not None
        kh, kw = n.conv.kernel
        cin, cout = n.conv.input[3], n.conv.out_channels
        w = r.standard_normal((kh, kw, cin, cout)) * np.sqrt(2.0 / (kh * kw * cin))
        return {n.params[0]: w.astype(np.float32)}
    if n.kind == "bn":
        c = n.shape[-1]
        # The last BN of a residual branch gets a small gamma, so the residual stream grows
        # slowly over the model's 40 units instead of exploding.
        small = n.name.endswith("/bn_last")
        gamma = r.uniform(0.1, 0.3, c) if small else r.uniform(0.5, 1.0, c)
        beta = r.normal(0.0, 0.1, c)
        mean = r.normal(0.0, 0.1, c)
        var = r.uniform(0.5, 1.5, c)
        vals = (gamma, beta, mean, var)
        return {p: v.astype(np.float32) for p, v in zip(n.params, vals, strict=True)}
    if n.kind == "bias_add":
        return {n.params[0]: r.normal(0.0, 0.1, n.shape[-1]).astype(np.float32)}
    return {}


def check_cuts(g: Graph, model: str, blocks: list[CutSpec], partsearch: list[str]) -> None:
    """ValueError naming the entry (blocks[1], partsearch[0]) when a block's name is taken or a
    block or partsearch node does not cut `g`; results are kept by name."""
    seen: dict[str, str] = {model: "the model's own name"}
    for i, b in enumerate(blocks):
        if b.name in seen:
            raise ValueError(
                f"blocks[{i}]: name {quote(b.name)} is also {seen[b.name]} (results are kept "
                "by name: give each block its own)"
            )
        seen[b.name] = f"blocks[{i}]"
        try:
            g.cut(b.start, b.stop)  # raises SpecError naming the node
        except SpecError as e:
            raise ValueError(f"blocks[{i}] ('{b.name}'): fields 'from', 'to': {e}") from None
    for i, name in enumerate(partsearch):
        try:
            g.cut(None, name)
        except SpecError as e:
            raise ValueError(f"partsearch[{i}]: {e}") from None

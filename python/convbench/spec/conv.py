"""A convolution as shapes.yaml describes it, and the workload it makes at a batch size.

Every derived figure (output shape, FLOPs, benchdnn descriptor) is computed here from the fields a
user typed, never typed twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import quote
from .limits import check_int32

__all__ = ["ConvSpec", "ConvWorkload"]

Pair = tuple[int, int]
ExplicitPadding = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


class ConvSpec(BaseModel):
    """One convolution as typed in shapes.yaml (NHWC input, HWIO weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    input: tuple[int, int, int, int]
    kernel: Pair
    out_channels: int = Field(gt=0)
    strides: Pair = (1, 1)
    padding: str | ExplicitPadding = "SAME"
    dilation: Pair = (1, 1)
    groups: int = Field(ge=1, default=1)
    count: int = Field(ge=0)
    note: str = ""

    @field_validator("input", mode="before")
    @classmethod
    def _input_nhwc(cls, v: Any) -> Any:
        if not isinstance(v, (list, tuple)) or len(v) != 4:
            raise ValueError(f"expected an NHWC shape [N, H, W, C], got {quote(v)}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v):
            raise ValueError(
                f"every dimension of the NHWC input must be a positive integer, got {quote(v)}"
            )
        return v

    @field_validator("kernel", "strides", "dilation", mode="before")
    @classmethod
    def _positive_pair(cls, v: Any) -> Any:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError(f"expected a pair [height, width], got {quote(v)}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v):
            raise ValueError(f"both values must be positive integers, got {quote(v)}")
        return v

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in ("SAME", "VALID"):
                raise ValueError(
                    f"expected SAME, VALID or [[top, bottom], [left, right]], got {quote(v)}"
                )
            return v
        ok = (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(isinstance(side, (list, tuple)) and len(side) == 2 for side in v)
            and all(
                isinstance(p, int) and not isinstance(p, bool) and p >= 0
                for side in v
                for p in side
            )
        )
        if not ok:
            raise ValueError(
                "expected SAME, VALID or non-negative [[top, bottom], [left, right]], "
                f"got {quote(v)}"
            )
        return v

    @model_validator(mode="after")
    def _output_exists(self) -> ConvSpec:
        c = self.input[3]
        if c % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"field 'groups': {self.groups} groups must divide both the input channels ({c}) "
                f"and out_channels ({self.out_channels})"
            )
        (ph0, ph1), (pw0, pw1) = self.pads
        for axis, size, k, _stride, d, p in (
            ("height", self.input[1], self.kernel[0], self.strides[0], self.dilation[0], ph0 + ph1),
            ("width", self.input[2], self.kernel[1], self.strides[1], self.dilation[1], pw0 + pw1),
        ):
            extent = (k - 1) * d + 1
            if size + p < extent:
                raise ValueError(
                    f"impossible shape: the dilated kernel {axis} {extent} is larger than the "
                    f"padded input {axis} {size + p}"
                )
        tensors = self.tensor_elements(self.input[0])
        problem = check_int32(tensors)
        if problem is not None:
            field = "out_channels" if problem.startswith("the weight") else "input"
            raise ValueError(f"field '{field}': {problem}")
        return self

    def tensor_elements(self, batch: int) -> dict[str, int]:
        """Element count of every tensor the conv touches at `batch`: input, zero-padded input,
        weights, output."""
        (ph0, ph1), (pw0, pw1) = self.pads
        _, h, w, c = self.input
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilation
        oh = (h + ph0 + ph1 - (kh - 1) * dh - 1) // sh + 1
        ow = (w + pw0 + pw1 - (kw - 1) * dw - 1) // sw + 1
        return {
            "input": batch * h * w * c,
            "padded input": batch * (h + ph0 + ph1) * (w + pw0 + pw1) * c,
            "weight tensor": kh * kw * (c // self.groups) * self.out_channels,
            "output": batch * oh * ow * self.out_channels,
        }

    @property
    def pads(self) -> ExplicitPadding:
        """((top, bottom), (left, right)), with TensorFlow's rule for SAME."""
        if self.padding == "VALID":
            return ((0, 0), (0, 0))
        if self.padding == "SAME":
            out = []
            for size, k, s, d in zip(
                self.input[1:3], self.kernel, self.strides, self.dilation, strict=True
            ):
                extent = (k - 1) * d + 1
                o = math.ceil(size / s)
                total = max((o - 1) * s + extent - size, 0)
                out.append((total // 2, total - total // 2))
            return (out[0], out[1])
        return self.padding  # type: ignore[return-value]


@dataclass(frozen=True)
class ConvWorkload:
    """A convolution at a given batch size, with everything derived from its spec (implements
    the `Workload` protocol)."""

    spec: ConvSpec
    batch: int
    kind: ClassVar[str] = "conv"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        return f"{self.spec.name}@b{self.batch}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        _, h, w, c = self.spec.input
        return (self.batch, h, w, c)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        kh, kw = self.spec.kernel
        return (kh, kw, self.spec.input[3] // self.spec.groups, self.spec.out_channels)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        (pt, pb), (pl, pr) = self.spec.pads
        _, h, w, _ = self.spec.input
        (kh, kw), (sh, sw), (dh, dw) = self.spec.kernel, self.spec.strides, self.spec.dilation
        oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
        ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
        return (self.batch, oh, ow, self.spec.out_channels)

    @property
    def groups(self) -> int:
        return self.spec.groups

    @property
    def depthwise(self) -> bool:
        """One group per input channel (TF's DepthwiseConv2dNative, channel multiplier
        out_channels / in_channels)."""
        return self.spec.groups > 1 and self.spec.groups == self.spec.input[3]

    @property
    def conv_kind(self) -> str:
        """dense, depthwise or grouped."""
        if self.spec.groups == 1:
            return "dense"
        return "depthwise" if self.depthwise else "grouped"

    @property
    def flops(self) -> int:
        n, oh, ow, oc = self.output_shape
        kh, kw = self.spec.kernel
        return 2 * n * oh * ow * oc * (self.spec.input[3] // self.spec.groups) * kh * kw

    def benchdnn_fields(self) -> dict[str, int]:
        """The problem as oneDNN describes it: dilation counted from 0, top/left pads only."""
        n, h, w, c = self.input_shape
        _, oh, ow, oc = self.output_shape
        (kh, kw), (sh, sw), (dh, dw) = self.spec.kernel, self.spec.strides, self.spec.dilation
        (pt, _), (pl, _) = self.spec.pads
        return {
            "g": self.spec.groups,
            "mb": n,
            "ic": c,
            "ih": h,
            "iw": w,
            "oc": oc,
            "oh": oh,
            "ow": ow,
            "kh": kh,
            "kw": kw,
            "sh": sh,
            "sw": sw,
            "ph": pt,
            "pw": pl,
            "dh": dh - 1,
            "dw": dw - 1,
        }

    @property
    def benchdnn(self) -> str:
        """oneDNN benchdnn problem descriptor, e.g. mb1ic64ih108iw21oc64oh108ow21kh3kw3ph1pw1."""
        f = self.benchdnn_fields()
        d = f"g{f['g']}" if f["g"] != 1 else ""
        d += "".join(f"{k}{f[k]}" for k in ("mb", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw"))
        if (f["sh"], f["sw"]) != (1, 1):
            d += f"sh{f['sh']}sw{f['sw']}"
        d += f"ph{f['ph']}pw{f['pw']}"
        if (f["dh"], f["dw"]) != (0, 0):
            d += f"dh{f['dh']}dw{f['dw']}"
        return d

    def problem(self) -> dict[str, Any]:
        """What determines the computation: the identity a kernel or a tuning record is kept by."""
        return {
            "input_shape": list(self.input_shape),
            "weight_shape": list(self.weight_shape),
            "pads": [list(p) for p in self.spec.pads],
            "strides": list(self.spec.strides),
            "dilation": list(self.spec.dilation),
            **({"groups": self.spec.groups} if self.spec.groups != 1 else {}),
        }

    def describe(self) -> dict[str, Any]:
        """The workload as it appears in the JSON's `workloads` section."""
        return {
            "name": self.name,
            "kind": "conv",
            "batch": self.batch,
            **self.problem(),
            "output_shape": list(self.output_shape),
            "kernel": list(self.spec.kernel),
            "padding": self.spec.padding
            if isinstance(self.spec.padding, str)
            else [list(p) for p in self.spec.padding],
            "count": self.spec.count,
            "conv_kind": self.conv_kind,
            "flops": self.flops,
            "benchdnn": self.benchdnn,
        }

    def to_task(self) -> dict[str, Any]:
        """What a worker process needs to rebuild this workload (workload_from_task)."""
        return {"kind": "conv", "spec": self.spec.model_dump(mode="json"), "batch": self.batch}

    @classmethod
    def from_task(cls, d: dict[str, Any]) -> ConvWorkload:
        return cls(ConvSpec.model_validate(d["spec"]), int(d["batch"]))

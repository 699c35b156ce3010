"""The shapes file (shapes.yaml): read once, parsed and validated in one place.

`load_shapes` reads the file and returns its convs and its model section (or None); every error
is a SpecError naming the file, the entry and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .conv import ConvSpec
from .errors import SpecError
from .model import ModelSpec, parse_model

__all__ = ["ShapesFile", "load_shapes", "load_spec", "parse_shapes", "parse_spec"]


@dataclass(frozen=True)
class ShapesFile:
    """A parsed shapes file: its convs, and its `model` section when it has one."""

    source: str
    convs: list[ConvSpec]
    model: ModelSpec | None


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    convs: list[ConvSpec] = Field(min_length=1)
    model: dict[str, Any] | None = None  # validated by parse_model

    @model_validator(mode="after")
    def _unique_names(self) -> _SpecFile:
        seen: set[str] = set()
        for i, c in enumerate(self.convs):
            if c.name in seen:
                raise ValueError(f"convs[{i}]: duplicate name '{c.name}'")
            seen.add(c.name)
        return self


def _describe_error(source: str, raw: Any, err: dict[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    where = source
    if len(loc) >= 2 and loc[0] == "convs" and isinstance(loc[1], int):
        idx = loc[1]
        entry_name = None
        try:
            entry_name = raw["convs"][idx].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        where += f": convs[{idx}]" + (f" ('{entry_name}')" if entry_name else "")
        field = [str(p) for p in loc[2:] if not str(p).startswith(("tuple[", "literal["))]
    else:
        field = [str(p) for p in loc]
    # Drop pydantic's union-branch tags (e.g. "function-after[...]") from the field path.
    field = [f for f in field if "[" not in f]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    if field:
        where += f": field '{'.'.join(field)}'"
    return f"{where}: {msg}"


def parse_shapes(text: str, source: str = "<shapes>") -> ShapesFile:
    """Parse shapes-file text; raise SpecError naming the entry and field on any problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{source}: not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a mapping with a 'convs' list at the top level")
    try:
        parsed = _SpecFile.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        lines = [_describe_error(source, raw, err) for err in errors[:5]]
        if len(errors) > 5:
            lines.append(f"... and {len(errors) - 5} more")
        raise SpecError("\n".join(lines)) from None
    model = parse_model(parsed.model, source) if parsed.model is not None else None
    return ShapesFile(source, parsed.convs, model)


def load_shapes(path: str | Path) -> ShapesFile:
    """Read and parse a shapes file, once."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpecError(f"{p}: cannot read the shapes file: {e.strerror}") from None
    return parse_shapes(text, source=str(p))


def parse_spec(text: str, source: str = "<shapes>") -> list[ConvSpec]:
    """The convs of shapes-file text (parse_shapes(...).convs)."""
    return parse_shapes(text, source).convs


def load_spec(path: str | Path) -> list[ConvSpec]:
    """The convs of a shapes file (load_shapes(path).convs)."""
    return load_shapes(path).convs

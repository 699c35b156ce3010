"""The shapes file (shapes.yaml): read once, parsed and validated in one place.

`load_shapes` reads the file and returns its convs and its model section (or None); every error
is a SpecError naming the file, the entry and the field.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .conv import ConvSpec
from .errors import SpecError, quote
from .limits import MAX_CONVS, MAX_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from .model import AnyModelSpec, parse_model

__all__ = [
    "ShapesFile",
    "load_shapes",
    "load_spec",
    "parse_shapes",
    "parse_spec",
    "read_shapes_text",
]

# PyYAML's C parser when it has one (fast on a 1 MiB file); it is only run on text whose nesting
# depth was measured first from the event stream, which needs no recursion.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ShapesFile:
    """A parsed shapes file: its convs, and its `model` section when it has one."""

    source: str
    convs: list[ConvSpec]
    model: AnyModelSpec | None


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    convs: list[ConvSpec] = Field(min_length=1, max_length=MAX_CONVS)
    model: dict[str, Any] | None = None  # validated by parse_model

    @model_validator(mode="after")
    def _unique_names(self) -> _SpecFile:
        seen: set[str] = set()
        for i, c in enumerate(self.convs):
            if c.name in seen:
                raise ValueError(f"convs[{i}]: duplicate name '{c.name}'")
            seen.add(c.name)
        return self


def _name_clashes(source: str, convs: list[ConvSpec], model: AnyModelSpec) -> None:
    """Kernels and records are keyed by workload name: a conv may not share its name with the
    model or one of its blocks, or their results would merge."""
    owners = {model.name: "model.name"}
    owners.update({b.name: f"model.blocks[{i}].name" for i, b in enumerate(model.blocks)})
    for i, c in enumerate(convs):
        if c.name in owners:
            raise SpecError(
                f"{source}: convs[{i}] ('{c.name}'): field 'name': '{c.name}' is also "
                f"{owners[c.name]}; results are kept by name, so each needs its own"
            )


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
        if entry_name and not isinstance(entry_name, str):
            entry_name = quote(entry_name)
        elif entry_name and len(entry_name) > 80:
            entry_name = entry_name[:77] + "..."
        where += f": convs[{idx}]" + (f" ('{entry_name}')" if entry_name else "")
        field = [_clip(p) for p in loc[2:] if not str(p).startswith(("tuple[", "literal["))]
    else:
        field = [_clip(p) for p in loc]
    # Drop pydantic's union-branch tags (e.g. "function-after[...]") from the field path.
    field = [f for f in field if "[" not in f]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    if field:
        where += f": field '{'.'.join(field)}'"
    return f"{where}: {msg}"


def _clip(part: Any, limit: int = 40) -> str:
    text = str(part)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _yaml_error(source: str, text: str, e: yaml.YAMLError) -> SpecError:
    if _Loader is not yaml.SafeLoader:
        # The pure-Python parser places errors more precisely: ask it, on the error path only
        # (its event stream needs no recursion; at the file size cap it takes a second or two).
        try:
            for _ in yaml.parse(text, Loader=yaml.SafeLoader):
                pass
        except yaml.YAMLError as precise:
            e = precise
    mark = getattr(e, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or str(e)
    return SpecError(f"{source}: not valid YAML{at}: {_clip(problem, 200)}")


def _measure_events(text: str, source: str) -> None:
    """Walks the YAML event stream (no recursion, nothing built) and refuses a document nested
    deeper than MAX_YAML_DEPTH before it is composed: composing recurses once per level."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                mark = event.start_mark
                raise SpecError(
                    f"{source}: nested more than {MAX_YAML_DEPTH} levels deep (line "
                    f"{mark.line + 1}, column {mark.column + 1}): a shapes file nests 4 deep"
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _expanded_size(raw: Any, source: str) -> None:
    """Refuses a document whose values, with every alias expanded, number more than
    MAX_YAML_VALUES (a YAML alias bomb), or that contains itself (a recursive alias). Counted on
    the shared structure, memoised per object, so it costs what the file costs."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(v: Any) -> int:
        if not isinstance(v, (list, dict)):
            return 1
        key = id(v)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError(f"{source}: a YAML alias refers to a value that contains it")
        active.add(key)
        items = list(v.keys()) + list(v.values()) if isinstance(v, dict) else v
        n = 1
        for item in items:
            n += size(item)
            if n > MAX_YAML_VALUES:
                break
        active.discard(key)
        sizes[key] = n
        return n

    n = size(raw)
    if n > MAX_YAML_VALUES:
        raise SpecError(
            f"{source}: expands to more than {MAX_YAML_VALUES:,} values once its YAML aliases "
            "are expanded (an alias bomb?): a shapes file has a few hundred"
        )


def parse_shapes(text: str, source: str = "<shapes>") -> ShapesFile:
    """Parse shapes-file text; raise SpecError naming the entry and field on any problem."""
    try:
        _measure_events(text, source)
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        if "nesting depth" in str(getattr(e, "problem", "") or e):
            # libyaml (PyYAML >= 6.0.4) refuses deep nesting itself, before its events reach
            # the count above: the same refusal, in the same words
            mark = getattr(e, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise SpecError(
                f"{source}: nested more than {MAX_YAML_DEPTH} levels deep{at}: a shapes file "
                "nests 4 deep"
            ) from None
        raise _yaml_error(source, text, e) from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to read") from None
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise SpecError(
            f"{source}: expected a mapping with a 'convs' list at the top level, got {kind}"
        )
    _expanded_size(raw, source)
    try:
        parsed = _SpecFile.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        lines = [_describe_error(source, raw, err) for err in errors[:5]]
        if len(errors) > 5:
            lines.append(f"... and {len(errors) - 5} more")
        raise SpecError("\n".join(lines)) from None
    model = parse_model(parsed.model, source) if parsed.model is not None else None
    if model is not None:
        _name_clashes(source, parsed.convs, model)
    return ShapesFile(source, parsed.convs, model)


def read_shapes_text(path: str | Path) -> str:
    """The text of a shapes file: a regular file of at most MAX_FILE_BYTES, UTF-8. The file
    type is checked on the open descriptor before anything is read, so a directory, a device
    (/dev/zero) or a FIFO is refused at once instead of read forever or blocked on."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if isinstance(e, IsADirectoryError):
            raise SpecError(f"{p}: is a directory, not a shapes file") from None
        raise SpecError(f"{p}: cannot read the shapes file: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SpecError(f"{p}: is a directory, not a shapes file")
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a device"
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket"
                if stat.S_ISSOCK(st.st_mode)
                else "not a regular file"
            )
            raise SpecError(f"{p}: is {kind}, not a shapes file (give a YAML file)")
        too_big = (
            f"{p}: is larger than {MAX_FILE_BYTES // 1024} KiB, the most a shapes file may be "
            "(they are a few kB, or a few hundred with a model's node table: is this the right "
            "file?)"
        )
        if st.st_size > MAX_FILE_BYTES:
            raise SpecError(too_big)
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise SpecError(f"{p}: cannot read the shapes file: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"{p}: not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, column {column} "
            "cannot be decoded (save the file as UTF-8)"
        ) from None


def load_shapes(path: str | Path) -> ShapesFile:
    """Read and parse a shapes file, once."""
    return parse_shapes(read_shapes_text(path), source=str(Path(path)))


def parse_spec(text: str, source: str = "<shapes>") -> list[ConvSpec]:
    """The convs of shapes-file text (parse_shapes(...).convs)."""
    return parse_shapes(text, source).convs


def load_spec(path: str | Path) -> list[ConvSpec]:
    """The convs of a shapes file (load_shapes(path).convs)."""
    return load_shapes(path).convs

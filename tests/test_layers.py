"""The package's structure stays as designed: no import cycle among its modules (imports inside
functions count), no private name imported from a sibling module, and every import points down
the layers (or sideways within one)."""

from __future__ import annotations

import ast
from pathlib import Path

import convbench
import pytest

ROOT = Path(convbench.__file__).parent
PKG = "convbench"
COMPILED = {"convbench._core", "convbench._cyloop"}  # the extension modules

# Layer of each top-level module or subpackage; the package's own __init__ re-exports, on top.
LAYERS = {
    "version": 0,
    "paths": 0,
    "cpus": 0,
    "host": 0,
    "spec": 0,
    "build": 1,
    "native": 1,
    "frameworks": 1,
    "measure": 2,
    "results": 2,
    "report": 3,
    "run": 4,
    "tune": 4,
    "cli": 5,
    "pytest_plugin": 5,
    "": 6,
}


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PKG, *parts])] = f
    return out


MODULES = _modules(ROOT)


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(name: str) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the module's file, at
    any depth (inside functions and classes too)."""
    tree = ast.parse(MODULES[name].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == PKG or a.name.startswith(PKG + "."):
                    out.append((a.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(name, node.level, node.module) if node.level else (node.module or "")
            if mod != PKG and not mod.startswith(PKG + "."):
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{mod}.{n}" in MODULES or f"{mod}.{n}" in COMPILED]
            for n in submodules:
                out.append((f"{mod}.{n}", [], node.lineno))
            rest = [n for n in names if n not in submodules]
            if rest:
                out.append((mod, rest, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def test_every_module_has_a_layer() -> None:
    unknown = sorted(m for m in MODULES if m.split(".")[1:2] and m.split(".")[1] not in LAYERS)
    assert not unknown, f"modules outside the declared layers: {unknown}"


def test_no_import_cycle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other in a loop: {cycles}"


def test_no_private_name_crosses_modules() -> None:
    bad = []
    for m in MODULES:
        for target, names, line in _imports(m):
            if target in COMPILED:
                continue
            if target.split(".")[-1].startswith("_") and not target.endswith("__"):
                bad.append(f"{m}:{line} imports module {target}")
            bad += [
                f"{m}:{line} imports {target}.{n}"
                for n in names
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
            ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_imports_point_down_the_layers() -> None:
    bad = []
    for m in MODULES:
        for target, _, line in _imports(m):
            if target in MODULES and _layer(target) > _layer(m):
                bad.append(
                    f"{m} (layer {_layer(m)}):{line} imports {target} (layer {_layer(target)})"
                )
    assert not bad, "imports that point up the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "from . import b\n",  # b: a sibling module
        "from .b import _hidden\n",
    ],
)
def test_the_checks_catch_what_they_look_for(source: str, tmp_path: Path, monkeypatch) -> None:
    """A planted cycle and a planted private import are found (so the checks above can fail)."""
    pkg = tmp_path / "convbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(source)
    (pkg / "b.py").write_text("from . import a\n_hidden = 1\n")
    monkeypatch.setattr(__import__(__name__), "MODULES", _modules(pkg))
    if "_hidden" in source:
        with pytest.raises(AssertionError, match="private names"):
            test_no_private_name_crosses_modules()
    else:
        with pytest.raises(AssertionError, match="in a loop"):
            test_no_import_cycle()

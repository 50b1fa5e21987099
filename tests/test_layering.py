"""Imports go one way (DESIGN.md): every module imports, in a fresh interpreter, and imports
only modules of its own layer or below. Known exceptions are listed with why they remain;
a new upward import fails here, and so does an exception that no longer exists (delete it).

Layers, bottom to top:
  0 errors, registry, version, machine, schema (the recipe types), state_dicts, and the
    pure helpers mmd, pyramid, synthesis_losses (and the data folders presets, weights)
  1 data, models, objectives, regularizers
  2 tricks
  3 methods
  4 training
  5 metrics
  6 config, run, api
  7 report, sweep, cli, bench, demos, the package itself
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"
LAYER = {
    "errors": 0,
    "registry": 0,
    "version": 0,
    "schema": 0,
    "machine": 0,
    "presets": 0,  # recipe files
    "weights": 0,  # the shipped classifiers' files
    "state_dicts": 0,
    "mmd": 0,
    "pyramid": 0,
    "synthesis_losses": 0,
    "data": 1,
    "models": 1,
    "objectives": 1,
    "regularizers": 1,
    "tricks": 2,
    "methods": 3,
    "training": 4,
    "metrics": 5,
    "config": 6,
    "run": 6,
    "api": 6,
    "report": 7,
    "sweep": 7,
    "cli": 7,
    "__main__": 7,
    "bench": 7,
    "demos": 7,
    "gankit": 7,
}

# (importing module, imported module) -> why it is still there; none today. A new entry is a
# debt: remove it with the import.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER[parts[1] if len(parts) > 1 else "gankit"]


def gankit_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported gankit module, at module level?) for every import in the file."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name == "gankit" or name.startswith("gankit."):
                found.append((name, node.col_offset == 0))
    return found


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_imports_in_a_fresh_interpreter():
    names = [module_name(p) for p in modules() if p.name != "__main__.py"]  # it runs the CLI
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    # one interpreter per module would take a minute; modules in reverse order so that the
    # lowest ones are imported by their own import, not only through a higher module
    done = subprocess.run(
        [sys.executable, "-c", script, *reversed(names)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("gankit.methods.critic", "gankit.tricks", "gankit.config", "gankit.cli"):
        alone = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
        assert alone.returncode == 0, (name, alone.stderr.decode()[-2000:])


def test_imports_go_one_way():
    upward, seen = [], set()
    for path in modules():
        importer = module_name(path)
        for imported, _ in gankit_imports(path):
            if layer(imported) > layer(importer):
                seen.add((importer, imported))
                if (importer, imported) not in KNOWN_UPWARD:
                    upward.append(f"{importer} imports {imported}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)
    stale = sorted(set(KNOWN_UPWARD) - seen)
    assert not stale, f"no longer there, delete from KNOWN_UPWARD: {stale}"


def test_the_layers_name_every_package():
    tops = {module_name(p).split(".")[1] for p in modules() if "." in module_name(p)}
    assert tops <= set(LAYER), tops - set(LAYER)


def package(module: str) -> str:
    """gankit.methods.critic -> methods; gankit.api -> api; gankit -> gankit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_cycle_between_packages():
    """The package graph (an edge for every import, function-level ones too) has no cycle:
    packages of the same layer (data and models, say) may import each other one way only.
    The package itself (gankit/__init__, which re-exports the API) is left out."""
    edges: dict[str, set[str]] = {}
    for path in modules():
        importer = package(module_name(path))
        for imported, _ in gankit_imports(path):
            target = package(imported)
            if importer != target and "gankit" not in (importer, target):
                edges.setdefault(importer, set()).add(target)
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle between packages: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)

"""The provider's import structure: every import runs down the floors, and none goes in a circle.

Floors, lowest first: the package root, ``exceptions``, ``utils`` and ``models``; ``conditions``;
``hooks``; ``triggers``; ``sensors`` and ``operators``; ``plugins``. A module may import its own
floor or a lower one; ``sensors`` and ``operators`` share a floor but not code (what both need
lives lower). Every import counts: at module level, inside functions, and under
``TYPE_CHECKING``. The sandbox (``leadpipe_sandbox``, in ``sandbox/``) is its own distribution,
outside the floors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_leadpipe"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

#: Floor of each top-level part of the package ("" is the package root).
FLOORS: dict[str, int] = {
    "": 0,
    "exceptions": 0,
    "utils": 0,
    "models": 0,
    "conditions": 1,
    "hooks": 2,
    "triggers": 3,
    "sensors": 4,
    "operators": 4,
    "plugins": 5,
}
EXCLUDED = ("testing",)
#: Parts on one floor that must not import each other.
APART = ({"sensors", "operators"},)


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts and parts[0] in EXCLUDED:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The provider modules ``name`` imports anywhere in its source (a package means its ``__init__``)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import mod" imports pkg.mod when that is a module, else a name from pkg.
            candidates = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate.startswith(PACKAGE) and candidate != name:
                targets.add(candidate)
    return targets


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def floor(module: str) -> int:
    part = _part(module)
    if part not in FLOORS:
        raise AssertionError(f"{module} is in no floor: add '{part}' to FLOORS")
    return FLOORS[part]


def _part(module: str) -> str:
    return module.removeprefix(PACKAGE).lstrip(".").partition(".")[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a higher floor, or of a part of the same floor kept apart (:data:`APART`)."""
    return sorted(
        f"{module} (floor {floor(module)}) imports {target} (floor {floor(target)})"
        for module, targets in graph.items()
        for target in targets
        if floor(target) > floor(module)
        or (_part(module) != _part(target) and {_part(module), _part(target)} in APART)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_every_part_of_the_package_has_a_floor() -> None:
    for module in import_graph():
        floor(module)


def test_no_import_runs_up_the_floors() -> None:
    assert upward_imports(import_graph()) == []


def test_no_imports_in_a_circle() -> None:
    assert cycles(import_graph()) == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / PACKAGE
    for folder in ("utils", "hooks", "plugins", "sensors", "operators"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    return root


def test_the_checks_see_imports_inside_functions_and_relative_ones(tree: Path) -> None:
    (tree / "hooks" / "core.py").write_text("X = 1\n")
    (tree / "utils" / "validation.py").write_text(
        "def check():\n    from airflow_provider_leadpipe.hooks import core\n    return core.X\n"
    )
    (tree / "plugins" / "app.py").write_text("from .leadpipe import base_path\n")
    (tree / "plugins" / "leadpipe.py").write_text("def app():\n    from . import app\n")
    (tree / "operators" / "base.py").write_text("")
    (tree / "sensors" / "base.py").write_text("from ..operators.base import X\n")
    graph = import_graph(tree)
    assert upward_imports(graph) == [
        f"{PACKAGE}.sensors.base (floor 4) imports {PACKAGE}.operators.base (floor 4)",
        f"{PACKAGE}.utils.validation (floor 0) imports {PACKAGE}.hooks.core (floor 2)",
    ]
    assert cycles(graph) == [[f"{PACKAGE}.plugins.app", f"{PACKAGE}.plugins.leadpipe"]]

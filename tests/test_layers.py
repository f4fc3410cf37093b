"""The layer rule, read from the source with ast (imports inside functions count too).

A package may import only packages of a lower layer (and itself): the store format and guardian's
local files at the bottom, the domain packages over them, the runtime over those, the CLI on top.
So format/, store/, repair/, snapshots/, index/ never import commands/ or runtime/, local/ imports
only errors and logs, and no two packages import each other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "guardian"

# A new package or root module goes here, at the lowest layer above everything it imports.
LAYERS = {
    "__init__": 0, "errors": 0, "logs": 0, "words": 0,
    "format": 1, "local": 1, "restart": 1,
    "config": 2, "store": 2,
    "snapshots": 3, "index": 3,
    "repair": 4, "server": 4, "mcp": 4, "replicas": 4,
    "runtime": 5,
    "commands": 6,
    "cli": 7,
    "__main__": 8,
}


def unit_of(path: Path) -> str:
    """The package (or root module) a source file belongs to."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@cache
def units_on_disk() -> frozenset[str]:
    return frozenset(unit_of(path) for path in PACKAGE.rglob("*.py"))


def imported_units(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "guardian" and len(parts) > 1 and parts[1] in units_on_disk():
                found.add(parts[1])
    return found


def import_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        for other in imported_units(path) - {unit}:
            graph[unit][other].append(str(path.relative_to(PACKAGE.parent)))
    return graph


def test_every_package_has_a_layer():
    assert units_on_disk() - set(LAYERS) == set(), "add the new package to LAYERS in tests/test_layers.py"


def test_no_package_imports_its_own_layer_or_above():
    upward = [f"{unit} (layer {LAYERS[unit]}) imports {other} (layer {LAYERS[other]}) in {files[0]}"
              for unit, imports in import_graph().items() for other, files in imports.items()
              if LAYERS.get(other, 99) >= LAYERS.get(unit, 99)]
    assert upward == []


def test_the_lower_layers_never_import_commands_or_runtime():
    graph = import_graph()
    for low in ("format", "store", "local", "restart", "repair", "snapshots", "index", "server", "mcp"):
        assert not {"commands", "runtime", "cli"} & set(graph.get(low, {})), low
    assert set(graph.get("local", {})) <= {"errors", "logs"}
    assert set(graph.get("restart", {})) == set()  # pure: the supervisor and the MCP relay share it


def test_no_package_cycle():
    graph = {unit: set(imports) for unit, imports in import_graph().items()}
    state: dict[str, str] = {}

    def visit(unit: str, trail: list[str]) -> None:
        state[unit] = "open"
        for other in sorted(graph.get(unit, ())):
            if state.get(other) == "open":
                raise AssertionError("package cycle: " + " -> ".join(trail + [unit, other]))
            if other not in state:
                visit(other, trail + [unit])
        state[unit] = "done"

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [])

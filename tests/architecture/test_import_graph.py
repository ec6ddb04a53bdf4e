"""The house's layering, derived from the code: data flows one way (data -> models -> fl ->
defenses -> attacks -> metrics -> experiments -> integrations / findings -> report -> cli), a lower
floor never imports a higher one, and no module imports, even lazily, one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "medleak"

#: Small top-level modules any floor may use (they import nothing of medleak but each other).
BASE = {
    "medleak",
    "errors",
    "flags",
    "private_files",
    "progress",
    "strict_json",
    "system_memory",
    "yaml_input",
    "output_targets",
    "capture",
}
#: Floors, lowest first; a package imports only from lower floors (or its own, or BASE).
FLOORS = [
    ["data"],
    ["models"],
    ["fl"],
    ["defenses"],
    ["attacks"],
    ["metrics"],
    ["experiments"],
    ["integrations", "findings"],
    ["report"],
    ["cli", "api"],
]
RANK = {name: rank for rank, names in enumerate(FLOORS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the medleak modules it imports anywhere in its body (lazy imports too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "medleak"


def test_no_floor_imports_a_higher_one() -> None:
    upward = []
    for module, targets in _imports().items():
        source = _floor(module)
        for target in targets:
            floor = _floor(target)
            if floor == source or floor in BASE:
                continue
            if source in BASE:
                upward.append(f"{module} -> {target} (a base module imports a floor)")
            elif RANK[floor] >= RANK[source]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_package_is_placed_on_a_floor() -> None:
    floors = {_floor(m) for m in _imports()}
    assert floors <= set(RANK) | BASE, floors - set(RANK) - BASE


def test_no_import_circles() -> None:
    graph = _imports()
    # a module importing its own package's __init__ re-export is not a circle of its making
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert circles == []

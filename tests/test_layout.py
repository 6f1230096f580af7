"""The package's folders are layers: every import runs downward, and no two modules import each other.

The layers, top to bottom, are drawn in docs/development.md. Imports under
``TYPE_CHECKING`` count too: a cycle that only the type checker sees is still two
modules that cannot be read apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sfmock"

# Top to bottom; a module may import only from its own layer or the ones below it.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "edges",
        {"__main__", "cli", "cli_check", "cli_fidelity", "cli_values", "pytest_plugin", "remote"}
        | {"checks", "strategies"},
    ),
    ("testing", {"testing"}),
    (
        "serving",
        {"server", "protocol", "transports", "requests_transport", "keepalive", "exchanges", "workers", "heap"},
    ),
    ("composition", {"app", "config"}),
    ("fidelity", {"fidelity"}),
    ("chaos", {"chaos"}),
    ("service", {"service"}),
    ("state", {"state"}),
    ("contract", {"contract", "contracts"}),
    (
        "ground",
        {
            "clock",
            "errors",
            "documents",
            "imaging",
            "wording",
            "scrubbing",
            "offload",
            "untrusted",
            "globs",
            "_version",
        },
    ),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every sfmock module that ``path`` imports, at any depth of the file, except under
    ``if TYPE_CHECKING:``: an import for annotations only names a parameter's class (a store's
    part naming the store it belongs to), it loads nothing, so it is no cycle."""
    tree = ast.parse(path.read_text("utf-8"))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sfmock"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if not module.startswith("sfmock"):
                continue
            for alias in node.names:  # ``from sfmock.x import y`` may name the module sfmock.x.y
                candidate = f"{module}.{alias.name}"
                exists = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                found.add(candidate if exists else module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package itself re-exports from everywhere
    for rank, (_, members) in enumerate(LAYERS):
        if parts[1] in members:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the map in docs/development.md")


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        _layer(module)


def test_imports_run_downward() -> None:
    upward = []
    for module, targets in _graph().items():
        rank = _layer(module)
        for target in targets:
            to = _layer(target)
            if rank is not None and to is not None and to < rank:
                upward.append(f"{module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[to][0]})")
    assert not upward, "imports that run upward:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    # Tarjan's strongly connected components: a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    assert not cycles, "modules that import each other:\n" + "\n".join(", ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["sfmock.checks", "sfmock.strategies"])
def test_public_homes_reexport_everything(module: str) -> None:
    import importlib

    public = importlib.import_module(module)
    inner = importlib.import_module(module.replace("sfmock.", "sfmock.testing."))
    assert public.__all__ == inner.__all__
    for name in inner.__all__:
        assert getattr(public, name) is getattr(inner, name)

"""The project's import graph, read from the source (every `import`, at any depth), for the layout tests."""

import ast
from pathlib import Path

PACKAGE = "pipeline"


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name (a package by its `__init__`)."""
    files = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def imports_of(path: Path, modules: dict[str, Path], top_level_only: bool = False) -> set[str]:
    """The project modules a file imports (`from a.b import c` counts `a.b.c` when that is a module, else `a.b`)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                      for alias in node.names}
    return {name for name in found if name in modules}


def with_parents(name: str) -> list[str]:
    """A module and the packages above it, whose `__init__` runs when it is imported."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def closure(roots: dict[str, bool], modules: dict[str, Path]) -> set[str]:
    """Every project module that importing the roots runs; a root mapped to True counts its top-level imports only
    (the CLI, whose commands import their stage inside the function)."""
    seen: set[str] = set()
    todo = [(root, top) for root, top in roots.items()]
    while todo:
        name, top_only = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for parent in with_parents(name)[:-1]:
            todo.append((parent, False))
        todo += [(found, False) for found in imports_of(modules[name], modules, top_level_only=top_only)]
    return seen


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's explicit project imports."""
    return {name: imports_of(path, modules) for name, path in modules.items()}

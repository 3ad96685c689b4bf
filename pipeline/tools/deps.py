"""dvc.yaml's code deps, generated from the import graph: `pipeline dev deps --write` rewrites them, `--check` (and a
test) fails when they are stale.

Each stage group's code deps are exactly the project modules its command runs: `python -m pipeline.cli.run_stage
STAGE` imports that module's top level, then `pipeline.cli.stages`' (its commands import their stage inside the
function) and `pipeline.stages.STAGE`, with everything those import, at any depth, and the packages above each. The graph is read
from the source (`ast`), so nothing is imported. A folder whose every module is in the set is listed as the folder
(one entry in dvc.lock rather than one a file: DVC rewrites the whole lock file after every stage, so its length is
paid 43 times a run); any other module is listed as its file. Deps that are not code (data, settings) are kept as
written, after the code.
"""

import ast
import re
from pathlib import Path

from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError

PACKAGE = "pipeline"
STAGES = ("download", "settings", "split", "preprocess", "audit", "train", "evaluate", "export")
ENTRY = "pipeline.cli.run_stage"
CLI = "pipeline.cli.stages"
# A stage's code dep in dvc.yaml: `        - pipeline/...` inside its `deps:` list.
CODE_DEP = re.compile(r"^(\s+)- (pipeline/\S*)$")


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
    todo = list(roots.items())
    while todo:
        name, top_only = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [(parent, False) for parent in with_parents(name)[:-1]]
        todo += [(found, False) for found in imports_of(modules[name], modules, top_level_only=top_only)]
    return seen


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's explicit project imports."""
    return {name: imports_of(path, modules) for name, path in modules.items()}


def imported_by(stage: str, modules: dict[str, Path]) -> set[str]:
    """What `python -m pipeline.cli.run_stage STAGE` imports."""
    return closure({ENTRY: True, CLI: True, f"pipeline.stages.{stage}": False}, modules)


def code_deps(stage: str, root: Path, modules: dict[str, Path] | None = None) -> list[str]:
    """The stage's code deps as dvc.yaml lists them: whole folders where every module is imported, else files.
    `modules`: the package's `module_files`, when the caller has them already."""
    modules = modules or module_files(root)
    used = {modules[name].relative_to(root) for name in imported_by(stage, modules)}
    every = [path.relative_to(root) for path in modules.values()]
    folders = {folder for path in every for folder in path.parents if folder != Path(".")}
    whole = {folder for folder in folders if all(path in used for path in every if path.is_relative_to(folder))}
    top = {folder for folder in whole if not any(folder.is_relative_to(other) for other in whole - {folder})}
    files = {path for path in used if not any(path.is_relative_to(folder) for folder in top)}
    return sorted(str(path) for path in top | files)


def generated_dvc_yaml(root: Path) -> str:
    """dvc.yaml with each stage group's code deps replaced by `code_deps`, everything else as written."""
    modules, out = module_files(root), []
    for stage, line in _lines_by_stage((root / "dvc.yaml").read_text()):
        code = CODE_DEP.match(line)
        if not code:
            out.append(line)
        elif out and CODE_DEP.match(out[-1]) is None and out[-1].strip() == "deps:":
            if stage not in STAGES:
                raise PipelineError(f"dvc.yaml: stage {stage!r} lists code deps, but {__name__} knows no such stage")
            out += [f"{code.group(1)}- {dep}" for dep in code_deps(stage, root, modules)]
    return "\n".join(out)


def stale_stages(root: Path) -> list[str]:
    """The stage groups whose code deps in dvc.yaml differ from the generated ones."""
    written: dict[str, list[str]] = {}
    for stage, line in _lines_by_stage((root / "dvc.yaml").read_text()):
        code = CODE_DEP.match(line)
        if code and stage:
            written.setdefault(stage, []).append(code.group(2))
    modules = module_files(root)
    return [stage for stage in STAGES if stage in written and written[stage] != code_deps(stage, root, modules)]


def write_deps(root: Path) -> list[str]:
    """Rewrite dvc.yaml's code deps (atomically) where they are stale; returns the stage groups changed."""
    stale = stale_stages(root)
    if stale:
        write_text(root / "dvc.yaml", generated_dvc_yaml(root))
    return stale


def _lines_by_stage(text: str) -> list[tuple[str | None, str]]:
    """Each line of dvc.yaml with the stage (or artifact) heading it falls under, None before the first."""
    stage, tagged = None, []
    for line in text.split("\n"):
        heading = re.match(r"^  ([a-z_]+):$", line)
        if heading:
            stage = heading.group(1)
        tagged.append((stage, line))
    return tagged

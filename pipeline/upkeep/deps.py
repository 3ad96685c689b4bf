"""dvc.yaml's code deps, generated from the import graph: `pipeline dev deps --write` rewrites them, `--check` (and a
test) fails when they are stale.

Each stage group's code deps are exactly the project modules its command runs: the module its `cmd` names
(`python -m pipeline.stages.STAGE`), with everything it imports, at any depth, and the packages above each. The
graph is read from the source (`ast`), so nothing is imported. A folder whose every module is in the set is listed
as the folder (one entry in dvc.lock rather than one a file: DVC rewrites the whole lock file after every stage, so
its length is paid by every stage of a run); any other module is listed as its file. Deps that are not code (data,
settings) are kept as written, after the code.
"""
import ast
import re
from pathlib import Path

from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError

PACKAGE = "pipeline"
STAGES = (
    "download", "settings", "split", "preprocess", "audit", "model_settings", "weights", "train", "evaluate", "export"
)
# A stage's command in dvc.yaml: `      cmd: python -m MODULE ...`, the module it runs.
COMMAND = re.compile(r"^\s+cmd: python -m ([\w.]+)")
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


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports (`from a.b import c` counts `a.b.c` when that is a module, else `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def closure(root: str, modules: dict[str, Path]) -> set[str]:
    """Every project module that importing `root` runs."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += with_parents(name)[:-1]
        todo += imports_of(modules[name], modules)
    return seen


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's explicit project imports."""
    return {name: imports_of(path, modules) for name, path in modules.items()}


def stage_module(stage: str) -> str:
    """The module a stage group's command runs: `python -m pipeline.stages.STAGE`."""
    return f"{PACKAGE}.stages.{stage}"


def imported_by(module: str, modules: dict[str, Path]) -> set[str]:
    """What `python -m MODULE` imports."""
    return closure(module, modules)


def code_deps(module: str, root: Path, modules: dict[str, Path] | None = None) -> list[str]:
    """The code deps of a stage whose command runs `module`, as dvc.yaml lists them: whole folders where every
    module is imported, else files. `modules`: the package's `module_files`, when the caller has them already."""
    modules = modules or module_files(root)
    used = {modules[name].relative_to(root) for name in imported_by(module, modules)}
    every = [path.relative_to(root) for path in modules.values()]
    folders = {folder for path in every for folder in path.parents if folder != Path(".")}
    whole = {folder for folder in folders if all(path in used for path in every if path.is_relative_to(folder))}
    top = {folder for folder in whole if not any(folder.is_relative_to(other) for other in whole - {folder})}
    files = {path for path in used if not any(path.is_relative_to(folder) for folder in top)}
    return sorted(str(path) for path in top | files)


def command_modules(text: str) -> dict[str, str]:
    """The module each stage group's command in dvc.yaml (`text`) runs, by stage group."""
    found = {}
    for stage, line in _lines_by_stage(text):
        command = COMMAND.match(line)
        if command and stage:
            found[stage] = command.group(1)
    return found


def generated_dvc_yaml(root: Path) -> str:
    """dvc.yaml with each stage group's code deps replaced by `code_deps`, everything else as written."""
    text, modules, out = (root / "dvc.yaml").read_text(), module_files(root), []
    commands = command_modules(text)
    for stage, line in _lines_by_stage(text):
        code = CODE_DEP.match(line)
        if not code:
            out.append(line)
        elif out and CODE_DEP.match(out[-1]) is None and out[-1].strip() == "deps:":
            out += [f"{code.group(1)}- {dep}" for dep in code_deps(_module_of(stage, commands, modules), root, modules)]
    return "\n".join(out)


def stale_stages(root: Path) -> list[str]:
    """The stage groups whose code deps in dvc.yaml differ from the generated ones."""
    text, written = (root / "dvc.yaml").read_text(), {}
    for stage, line in _lines_by_stage(text):
        code = CODE_DEP.match(line)
        if code and stage:
            written.setdefault(stage, []).append(code.group(2))
    modules, commands = module_files(root), command_modules(text)
    return [
        stage for stage in STAGES
        if stage in written and written[stage] != code_deps(_module_of(stage, commands, modules), root, modules)
    ]


def write_deps(root: Path) -> list[str]:
    """Rewrite dvc.yaml's code deps (atomically) where they are stale; returns the stage groups changed."""
    stale = stale_stages(root)
    if stale:
        write_text(root / "dvc.yaml", generated_dvc_yaml(root))
    return stale


def _module_of(stage: str | None, commands: dict[str, str], modules: dict[str, Path]) -> str:
    """The project module the stage group's command runs, or an error naming what is wrong with it."""
    if stage not in STAGES:
        raise PipelineError(f"dvc.yaml: stage {stage!r} lists code deps, but {__name__} knows no such stage")
    if commands.get(stage) not in modules:
        raise PipelineError(
            f"dvc.yaml: stage {stage!r}'s cmd runs no module of {PACKAGE}; write `python -m {stage_module(stage)} ...`"
        )
    return commands[stage]


def _lines_by_stage(text: str) -> list[tuple[str | None, str]]:
    """Each line of dvc.yaml with the stage (or artifact) heading it falls under, None before the first."""
    stage, tagged = None, []
    for line in text.split("\n"):
        heading = re.match(r"^  ([a-z_]+):$", line)
        if heading:
            stage = heading.group(1)
        tagged.append((stage, line))
    return tagged

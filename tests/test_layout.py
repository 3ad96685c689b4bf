"""The package's shape: no import cycles, imports only point down the layers, and each stage's code deps in dvc.yaml
are exactly the project modules its command imports, so `dvc status` sees every change that can change a result."""

from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from tests.conftest import REPO
from tests.imports import closure, graph, module_files

# Each subpackage may import its own modules and those of the layers before it, never after.
LAYERS = [
    ("core",), ("config",), ("data", "models"), ("analysis",), ("training", "inference"), ("serving",), ("stages", "remote"),
    ("cli",), ("__main__",)
]
STAGES = ("download", "settings", "split", "preprocess", "train", "evaluate", "export")
MODULES = module_files(REPO)
MAX_LINES = 300


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next((index for index, names in enumerate(LAYERS) if part in names), -1)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return [*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*trail, nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    assert _cycle(graph(MODULES)) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in graph(MODULES).items()
        for target in targets
        if _layer(target) > _layer(module) or (_layer(target) == _layer(module) and _package(target) != _package(module))
    ]
    assert upward == []


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_module_is_short() -> None:
    long = {str(path.relative_to(REPO)): n for path in MODULES.values() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _stage_deps() -> dict[str, set[str]]:
    """The code deps dvc.yaml gives each stage group, as written (files and folders)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: {dep for dep in stages[name]["do"]["deps"] if dep.startswith("pipeline")} for name in STAGES}


def _covered(deps: set[str]) -> set[str]:
    """The modules that a set of dep paths covers."""
    return {name for name, path in MODULES.items() for dep in deps if path.relative_to(REPO).is_relative_to(Path(dep))}


def _imported_by(stage: str) -> set[str]:
    """What `python -m pipeline.cli.stages STAGE` imports: the stage commands' module (its commands import their
    stage inside the function) and the stage module, with everything they import."""
    return closure({"pipeline.cli.stages": True, f"pipeline.stages.{stage}": False}, MODULES)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stages_code_deps_cover_every_module_its_command_imports(stage: str) -> None:
    assert _imported_by(stage) - _covered(_stage_deps()[stage]) == set()


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_depends_on_no_module_its_command_does_not_import(stage: str) -> None:
    assert _covered(_stage_deps()[stage]) - _imported_by(stage) == set()


def test_every_code_dep_exists() -> None:
    deps = set().union(*_stage_deps().values())
    assert deps and all((REPO / dep).exists() for dep in deps)


def test_dvc_reads_the_same_deps() -> None:
    with Repo(str(REPO)) as repo:
        read = {str(dep.def_path) for stage in repo.index.stages for dep in stage.deps if dep.def_path.startswith("pipeline")}
    assert read == set().union(*_stage_deps().values())

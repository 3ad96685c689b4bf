"""The package's shape: no import cycles, imports only point down the layers, and each stage's code deps in dvc.yaml
are exactly the project modules its command imports, so `dvc status` sees every change that can change a result."""

import warnings
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from pipeline.upkeep.deps import STAGES, command_modules, graph, imported_by, module_files, stage_module, stale_stages
from tests.helpers.params import REPO

# Each subpackage may import its own modules and those of the layers before it, never after: the stages, then the
# user features (rooms named for what they do for the user: onboarding's params editing serves the checks' `--apply`),
# then the repository's upkeep (docs and deps generators, benches: it may import any of those), then the command line.
LAYERS = [
    ("core",), ("config",), ("data",), ("models",), ("analysis",), ("training", "inference"), ("serving",), ("stages",),
    ("onboarding",), ("preflight", "tuning", "sharing"), ("upkeep",), ("cli",), ("__main__",)
]
USER_FEATURES = ("onboarding", "preflight", "tuning", "sharing")
MODULES = module_files(REPO)
GUIDE_LINES, MAX_LINES = 400, 600


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


def test_no_stage_imports_a_user_feature_or_the_upkeep() -> None:
    """What a stage runs is the pipeline's; a user feature or an upkeep tool can change without re-running any."""
    imported = set().union(*(imported_by(stage_module(stage), MODULES) for stage in STAGES))
    assert sorted(name for name in imported if _package(name) in (*USER_FEATURES, "upkeep", "cli")) == []


def test_every_subpackage_has_its_layer() -> None:
    assert sorted({_package(name) for name in MODULES if _layer(name) < 0} - {""}) == []


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_modules_past_the_guideline_are_named_and_none_is_unreadably_long() -> None:
    """Modules are split by concept, not by length: past GUIDE_LINES a module is named in a warning (split it if it
    holds two concepts); past MAX_LINES it fails."""
    lengths = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in MODULES.values()}
    long = {name: n for name, n in lengths.items() if n > GUIDE_LINES}
    if long:
        warnings.warn(f"modules over {GUIDE_LINES} lines: {long}", stacklevel=1)
    assert {name: n for name, n in long.items() if n > MAX_LINES} == {}


def _stage_deps() -> dict[str, set[str]]:
    """The code deps dvc.yaml gives each stage group, as written (files and folders)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: {dep for dep in stages[name]["do"]["deps"] if dep.startswith("pipeline")} for name in STAGES}


def _covered(deps: set[str]) -> set[str]:
    """The modules that a set of dep paths covers."""
    return {name for name, path in MODULES.items() for dep in deps if path.relative_to(REPO).is_relative_to(Path(dep))}


def test_dvc_yaml_code_deps_are_the_generated_ones() -> None:
    assert stale_stages(REPO) == [], "run `pipeline dev deps --write`"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stages_code_deps_are_exactly_the_modules_its_command_imports(stage: str) -> None:
    assert _covered(_stage_deps()[stage]) == imported_by(stage_module(stage), MODULES)


def test_every_stage_runs_its_own_module_and_none_depends_on_the_cli() -> None:
    """dvc.yaml -> code is one step: `python -m pipeline.stages.<stage>`, and no `pipeline` command's code (an edit
    there re-runs nothing)."""
    assert command_modules((REPO / "dvc.yaml").read_text()) == {stage: stage_module(stage) for stage in STAGES}
    assert [dep for deps in _stage_deps().values() for dep in deps if dep.startswith("pipeline/cli")] == []


def test_dvc_reads_the_same_deps() -> None:
    with Repo(str(REPO)) as repo:
        read = {str(dep.def_path) for stage in repo.index.stages for dep in stage.deps if dep.def_path.startswith("pipeline")}
    assert read == set().union(*_stage_deps().values())


def test_dvc_lock_holds_only_the_stages_of_dvc_yaml() -> None:
    """DVC keeps a removed stage's entry in dvc.lock, and every stage DVC runs reads and rewrites the whole file: an
    entry no stage owns is dropped when its stage is."""
    with Repo(str(REPO)) as repo:
        stages = {stage.addressing for stage in repo.index.stages}
    assert set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]) == stages

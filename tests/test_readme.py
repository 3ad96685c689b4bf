"""The `dvc exp run -S` commands README.md gives are valid: DVC accepts every override (each point of a queued
sweep) and the result validates."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides, get_hydra_sweeps, to_hydra_overrides

from pipeline.config.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def readme_exp_runs() -> list[list[str]]:
    """The arguments of each `dvc exp run` command in README.md's shell blocks (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line, comments=True) for line in commands if "dvc exp run" in line]


def overrides_of(args: list[str]) -> list[str]:
    """The values of a command's `-S` options."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == "-S"]


def is_sweep(overrides: list[str]) -> bool:
    """Whether DVC reads these overrides as a sweep (`key=a,b`), which it runs only with `--queue`."""
    return any(override.is_sweep_override() for override in to_hydra_overrides(overrides))


def expanded(overrides: list[str]) -> list[list[str]]:
    """The runs a command stands for: one per point of its sweep (`-S 'key=a,b'`, queued), as `dvc exp run` does."""
    if not is_sweep(overrides):
        return [overrides]
    return [point["params.yaml"] for point in get_hydra_sweeps({"params.yaml": overrides})]


COMMANDS = [overrides for args in readme_exp_runs() if (overrides := overrides_of(args))]
RUNS = [point for run in COMMANDS for point in expanded(run)]


def test_the_readme_has_exp_run_commands_with_overrides_and_sweeps():
    assert len(COMMANDS) >= 4
    assert ["data.cifar10.source=torchvision"] in COMMANDS  # the classic full-size CIFAR-10 runs: the defaults
    assert len(RUNS) >= len(COMMANDS) + 4  # the queued sweeps


def test_every_sweep_in_the_readme_is_queued():
    sweeps = [args for args in readme_exp_runs() if is_sweep(overrides_of(args))]
    assert sweeps and all("--queue" in args for args in sweeps)


@pytest.mark.parametrize("overrides", RUNS, ids=[" ".join(run)[:60] for run in RUNS])
def test_dvc_applies_the_readme_overrides_to_a_valid_params_file(tmp_path, overrides):
    params_file = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_file)

    apply_overrides(str(params_file), overrides)

    assert load_params(params_file) == load_params(ROOT / "params.yaml", overrides)

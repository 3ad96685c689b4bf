"""The `dvc exp run -S` commands README.md gives are valid: DVC accepts every override and the result validates."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides

from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def readme_exp_runs() -> list[list[str]]:
    """The `-S` overrides of each `dvc exp run` command in README.md's shell blocks (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    commands = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    runs = [shlex.split(line, comments=True) for line in commands if "dvc exp run" in line]
    return [[args[i + 1] for i, arg in enumerate(args) if arg == "-S"] for args in runs]


RUNS = [run for run in readme_exp_runs() if run]


def test_the_readme_has_exp_run_commands_with_overrides():
    assert len(RUNS) >= 4
    assert any(len(run) > 20 for run in RUNS)  # the classic full-size CIFAR-10 runs


@pytest.mark.parametrize("overrides", RUNS, ids=[" ".join(run)[:60] for run in RUNS])
def test_dvc_applies_the_readme_overrides_to_a_valid_params_file(tmp_path, overrides):
    params_file = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_file)

    apply_overrides(str(params_file), overrides)

    assert load_params(params_file) == load_params(ROOT / "params.yaml", overrides)

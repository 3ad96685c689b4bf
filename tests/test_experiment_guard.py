"""Two `dvc exp run` in one workspace cannot mix their params: a stage started by one of them refuses to run when
DVC's running experiment is another's, or when params.yaml is no longer its experiment's (the race itself is DVC's
and cannot be timed in a test: these tests set up the state it leaves), and a plain `dvc exp run` passes the check."""

import sys
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.stages.experiment_guard import EXPERIMENT_REF, check_own_experiment
from tests.helpers.params import REPO
from tests.helpers.workspace import run

PARAMS = Path("params.yaml")


def git(root: Path, *args: str) -> str:
    return run(root, "git", *args).strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose experiment ref holds `lr: 2` in params.yaml, for experiment 'own-name'; the
    workspace's params.yaml says the same; the working directory."""
    git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("lr: 2\n")
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-qm", "dvc-exp:base:head:own-name")
    git(tmp_path, "update-ref", EXPERIMENT_REF, "HEAD")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_NAME", "own-name")
    return tmp_path


def test_a_stage_of_the_running_experiment_with_its_params_runs(repo: Path) -> None:
    check_own_experiment(PARAMS)


def test_a_stage_whose_experiment_another_run_took_over_is_refused_pointing_at_the_queue(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "first-run")
    with pytest.raises(PipelineError, match="experiment 'own-name'.*'first-run'.*dvc queue start -j 2"):
        check_own_experiment(PARAMS)


def test_a_stage_whose_params_another_run_rewrote_is_refused(repo: Path) -> None:
    (repo / "params.yaml").write_text("lr: 3\n")
    with pytest.raises(PipelineError, match=r"params.yaml changed after `dvc exp run` started experiment 'own-name'"):
        check_own_experiment(PARAMS)


def test_outside_dvc_exp_run_there_is_nothing_to_check(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "params.yaml").write_text("lr: 3\n")
    monkeypatch.delenv("DVC_EXP_NAME")
    check_own_experiment(PARAMS)


def test_a_real_dvc_exp_run_sets_the_name_and_ref_the_check_reads(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    run(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    (tmp_path / "params.yaml").write_text("lr: 1\n")
    check = f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; " + (
        "from pipeline.stages.experiment_guard import check_own_experiment as c; c(Path('params.yaml')); "
        "import os; Path('out.txt').write_text(os.environ['DVC_EXP_NAME'] + ' ' + Path('params.yaml').read_text())"
    )
    (tmp_path / "check.py").write_text(check)
    (tmp_path / "dvc.yaml").write_text(
        f"stages:\n  s:\n    cmd: {sys.executable} check.py\n    deps: [check.py]\n    params: [lr]\n    outs: [out.txt]\n"
    )
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    output = run(tmp_path, sys.executable, "-m", "dvc", "exp", "run", "-S", "lr=2", "-n", "given-name")
    assert "given-name" in output
    assert (tmp_path / "out.txt").read_text() == "given-name lr: 2\n"

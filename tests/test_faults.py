"""Faults a user meets, each proved: kill -9 in the middle of each stage that writes outputs, then the same stage
again (the run recovers); what killed stages leave, gone once the next stage runs; a full disk; and every bad `-S`
value of a list generated from the params schema.

`dvc repro` re-runs a stage whose outputs are missing by running its `cmd:`; these tests run the stage commands
themselves (`python -m pipeline <stage> <name>`, or `python -m pipeline.stages.<stage> <name>`, what dvc.yaml runs),
once killed, once again, in a temporary workspace, with this checkout's code. Each stage is killed once its output
has visibly started (a partial temporary copy, a first checkpoint), or at the moment its output is whole in its
temporary copy but not yet renamed into place (tests/helpers/paused.py), and the re-run must end with the outputs an
uninterrupted run gives, and nothing half-written left. The tests that start processes are `slow`.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config.overrides import apply_override
from pipeline.config.params import parse_params
from pipeline.core.paths import Paths
from pipeline.stages.audit import audit_named
from pipeline.stages.command import stage_command
from pipeline.stages.download import download, download_named
from pipeline.stages.evaluate import evaluate_named
from pipeline.stages.preprocess import preprocess, preprocess_named
from pipeline.stages.split import split, split_named
from pipeline.stages.train import train, train_named
from tests.helpers.bad_overrides import DATASET, MODEL, bad_overrides
from tests.helpers.leftovers import checkpoint_left, copy_left, dead_pid
from tests.helpers.params import REPO, tiny_raw
from tests.helpers.refusals import files_outside
from tests.helpers.workspace import attempt, committed_copy, run

# Big enough that writing the raw archive and decoding val/test take a visible moment, small enough to stay quick.
FAULT_PARAMS = tiny_raw(
    **{
        "data.catsdogs.sample_per_class": 220,
        "split.catsdogs": {"train": 20, "val": 100, "test": 100},
        "train.batch_size": 8,
        "models.catsdogs_cnn.epochs": 4,
    }
)
EPOCHS = FAULT_PARAMS["models"][MODEL]["epochs"]
KILLED = -signal.SIGKILL
# The stage command dvc.yaml runs for each block a bad override lands in, and the dataset or model it is given.
STAGE_READING = {
    "seed": (download_named, DATASET), "data": (download_named, DATASET), "split": (split_named, DATASET),
    "preprocess": (preprocess_named, DATASET), "audit": (audit_named, DATASET), "aug": (train_named, MODEL),
    "train": (train_named, MODEL), "models": (train_named, MODEL), "evaluate": (evaluate_named, MODEL),
}

BAD_OVERRIDES = bad_overrides()

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """The outputs of uninterrupted download, split and preprocess runs of FAULT_PARAMS."""
    paths = Paths(tmp_path_factory.mktemp("reference"))
    params = parse_params(FAULT_PARAMS)
    download(DATASET, params.data[DATASET], params.seed, paths)
    split(DATASET, params.split[DATASET], params.seed, paths)
    preprocess(DATASET, params.preprocess[DATASET], paths)
    return paths


@pytest.fixture(scope="module")
def uninterrupted(reference: Paths, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A workspace where the model trained on the reference's arrays without interruption, in this process (a third
    process would cost seconds), outside any repository (see `outside_any_repo`)."""
    paths = Paths(tmp_path_factory.mktemp("uninterrupted"))
    given(paths, reference, "data/processed")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(paths.root)
        patch.setenv("DVC_STUDIO_OFFLINE", "true")
        train(MODEL, parse_params(FAULT_PARAMS), paths)
    return paths


@pytest.fixture
def workspace(tmp_path: Path) -> Paths:
    """An empty workspace holding FAULT_PARAMS as its params.yaml."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(FAULT_PARAMS))
    return Paths(tmp_path)


def given(workspace: Paths, reference: Paths, *folders: str) -> None:
    """Copy the reference's outputs of the earlier stages (folders relative to the root) into the workspace."""
    for folder in folders:
        shutil.copytree(reference.root / folder, workspace.root / folder)


def start(workspace: Paths, *args: str, module: str = "pipeline", paused_at: str | None = None) -> subprocess.Popen:
    """Start `python -m MODULE ARGS` in the workspace, importing this checkout's `pipeline`; with `paused_at` (an
    output's path), stopped for good once that output is whole in its temporary copy (see `paused_marker`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_STUDIO_OFFLINE": "true"}
    pause = [] if paused_at is None else ["tests.helpers.paused", paused_at, str(paused_marker(workspace))]
    return subprocess.Popen(
        [sys.executable, "-m", *pause, module, *args],
        cwd=workspace.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def paused_marker(workspace: Paths) -> Path:
    """The file a process started `paused_at` an output creates once it has stopped there."""
    return workspace.root.parent / f"{workspace.root.name}.paused"


def rerun(workspace: Paths, *args: str, module: str = "pipeline") -> tuple[str, str]:
    """Run the stage again to the end; its stdout and stderr."""
    process = start(workspace, *args, module=module)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out, err


def kill_once(process: subprocess.Popen, started: Callable[[], bool], timeout: float = 120) -> str:
    """SIGKILL the process as soon as `started()` holds, and return what it wrote on stderr; fail if it ends first
    (the moment was never seen)."""
    deadline = time.monotonic() + timeout
    while not started():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the stage ended before it could be killed: {process.communicate()[1][-2000:]}")
        time.sleep(0.005)
    process.kill()
    err = process.communicate()[1]
    assert process.returncode == KILLED
    return err


def partial_copies(folder: Path) -> list[Path]:
    """The temporary copies (`.<name>.<pid>_<random>.tmp`) of outputs being written in `folder`, if any."""
    return [path for path in folder.glob(".*.tmp") if any(path.rglob("*"))] if folder.is_dir() else []


def leftovers(workspace: Paths) -> list[Path]:
    """Anything half-written under the workspace: temporary copies, anywhere."""
    return sorted(workspace.root.rglob("*.tmp"))


def files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def weights(workspace: Paths) -> dict[str, torch.Tensor]:
    return torch.load(workspace.model_file(MODEL), weights_only=True)["state_dict"]


def assert_same_training(workspace: Paths, uninterrupted: Paths) -> None:
    """The workspace's model and training metrics are the uninterrupted run's, and no checkpoint or copy is left."""
    resumed, expected = weights(workspace), weights(uninterrupted)
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)
    assert files(workspace.train_dir(MODEL))["metrics.json"] == files(uninterrupted.train_dir(MODEL))["metrics.json"]
    assert list(workspace.checkpoint(MODEL).parent.iterdir()) == []
    assert leftovers(workspace) == []


@slow
def test_kill_9_during_download_then_rerun_gives_the_uninterrupted_archive(workspace, reference):
    raw = workspace.raw_dir(DATASET)  # written whole: a temporary copy of the folder beside it, then renamed
    kill_once(start(workspace, "download", DATASET), lambda: bool(partial_copies(raw.parent)))
    assert partial_copies(raw.parent)
    assert not raw.exists()

    rerun(workspace, "download", DATASET)

    assert files(raw) == files(reference.raw_dir(DATASET))
    assert leftovers(workspace) == [] and not list(raw.parent.glob(".source-*"))


@slow
def test_kill_9_during_split_before_its_manifests_are_renamed_then_rerun_gives_the_uninterrupted_ones(
    workspace, reference
):
    given(workspace, reference, "data/raw")
    manifests, expected = workspace.manifest_dir(DATASET), files(reference.manifest_dir(DATASET))
    paused = start(workspace, DATASET, module="pipeline.stages.split", paused_at=str(Paths().manifest_dir(DATASET)))
    kill_once(paused, paused_marker(workspace).is_file)
    assert [files(copy / DATASET) for copy in partial_copies(manifests.parent)] == [expected]  # whole, not renamed
    assert not manifests.exists()

    rerun(workspace, DATASET, module="pipeline.stages.split")

    assert files(manifests) == expected
    assert workspace.split_metrics(DATASET).read_bytes() == reference.split_metrics(DATASET).read_bytes()
    assert files(workspace.split_plots(DATASET)) == files(reference.split_plots(DATASET))
    assert leftovers(workspace) == []


@slow
def test_kill_9_during_preprocess_then_rerun_gives_the_uninterrupted_arrays(workspace, reference):
    given(workspace, reference, "data/raw", "data/manifests")
    processed = workspace.processed_dir(DATASET).parent

    def arrays_started() -> bool:
        return any(path.suffix == ".npy" for copy in partial_copies(processed) for path in copy.rglob("*"))

    kill_once(start(workspace, "preprocess", DATASET), arrays_started)
    assert not workspace.processed_dir(DATASET).exists()

    rerun(workspace, "preprocess", DATASET)

    assert files(workspace.processed_dir(DATASET)) == files(reference.processed_dir(DATASET))
    assert leftovers(workspace) == []


@slow
def test_kill_9_after_a_checkpoint_then_during_the_final_save_resumes_each_time_and_ends_with_identical_weights(
    workspace, reference, uninterrupted
):
    given(workspace, reference, "data/processed")
    checkpoint, model_file = workspace.checkpoint(MODEL), workspace.model_file(MODEL)

    kill_once(start(workspace, "train", MODEL), checkpoint.is_file)
    assert not model_file.exists()
    paused = start(workspace, "train", MODEL, paused_at=str(Paths().model_file(MODEL)))
    err = kill_once(paused, paused_marker(workspace).is_file)  # the whole model in its temporary copy, not renamed
    assert not model_file.exists() and partial_copies(model_file.parent)

    out, resumed_err = rerun(workspace, "train", MODEL)

    [resumed] = [line for line in err.splitlines() if line.startswith(f"resuming {MODEL} after epoch ")]
    assert 1 <= int(resumed.split()[4]) < EPOCHS
    assert resumed.endswith(f" of {EPOCHS}, from {Paths().checkpoint(MODEL)} (a run cut short)")
    assert yaml.safe_load(out)["resumed_from_epoch"] == EPOCHS
    assert f"resuming {MODEL} after epoch {EPOCHS} of {EPOCHS}" in resumed_err
    assert_same_training(workspace, uninterrupted)


@slow
def test_what_killed_stages_left_is_gone_once_the_next_stage_runs_and_what_is_still_written_stays(workspace):
    """DVC restored the killed stages from its run cache (their code never ran again): the next stage, any stage,
    removes their temporary copies and the checkpoint older than its model file."""
    killed_copy = copy_left(workspace.processed_dir(DATASET), dead_pid())
    checkpoint = checkpoint_left(workspace, MODEL)
    written_now = copy_left(workspace.model_file(MODEL), os.getpid())  # this process "writes" it: it must stay

    _, err = rerun(workspace, DATASET, module="pipeline.stages.settings")

    assert not killed_copy.exists() and not checkpoint.exists()
    assert written_now.is_dir() and workspace.model_file(MODEL).is_file()
    [line] = [line for line in err.splitlines() if line.startswith("removed what killed runs left: ")]
    assert str(killed_copy.relative_to(workspace.root)) in line and str(Paths().checkpoint(MODEL)) in line


HELD = "--- the tmpfs holds:"
FULL_DISK = f"""
folder=$1; shift
mount -t tmpfs -o size=4k tmpfs "$folder" || exit 99
head -c 4096 /dev/zero > "$folder/filler" 2>/dev/null
"$@"; status=$?
echo "{HELD}"; ls -A "$folder"
exit $status
"""


def full_disk(cwd: Path, folder: Path, *command: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    """Run `command` in `cwd` with a full 4 kB tmpfs mounted at `folder`, in a mount namespace of its own (`unshare
    -rm`: no root needed where user namespaces are on), which ends with it; its exit status, its stderr and the
    names of what the tmpfs holds after it. Skipped, saying why, where no tmpfs can be mounted."""
    if shutil.which("unshare") is None:
        pytest.skip("no tmpfs to fill: `unshare` (util-linux) is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    ran = subprocess.run(
        ["unshare", "-rm", "sh", "-c", FULL_DISK, "sh", str(folder), *command],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), "DVC_STUDIO_OFFLINE": "true", **(env or {})},
        capture_output=True, text=True, timeout=300,
    )
    if ran.returncode == 99 or HELD not in ran.stdout:
        pytest.skip(f"no tmpfs to fill: `unshare -rm` mounts none here (needs user namespaces, or root): {ran.stderr}")
    return ran.returncode, ran.stderr, ran.stdout.split(HELD)[-1].split()


@slow
def test_a_full_disk_under_dvc_is_one_line_naming_the_output_and_the_stage_to_rerun_and_nothing_half_written(
    workspace, reference
):
    given(workspace, reference, "data/raw")
    manifests = workspace.manifest_dir(DATASET)
    before = files_outside(workspace.root, manifests.parent)

    status, err, held = full_disk(
        workspace.root, manifests.parent, sys.executable, "-m", "pipeline.stages.split", DATASET,
        env={"DVC_STAGE": f"split@{DATASET}"},
    )

    assert status == 1
    assert err.splitlines() == [
        f"error: {Paths().manifest_dir(DATASET)}: no space left on the device while writing it; free some disk space "
        f"and run `dvc repro split@{DATASET}` again (the previous {DATASET}, if there was one, is unchanged)"
    ]
    assert held == ["filler"] and files_outside(workspace.root, manifests.parent) == before


@slow
def test_predict_on_a_full_disk_names_the_file_and_the_command_to_run_again(tiny_run, tmp_path):
    paths, _ = tiny_run
    out = tmp_path / "full" / "predictions.csv"
    command = ["predict", str(paths.model_file(MODEL)), str(paths.raw_archive(DATASET)), "--out", str(out)]

    status, err, held = full_disk(tmp_path, out.parent, sys.executable, "-m", "pipeline", *command)

    assert status == 1
    assert err.splitlines()[-1:] == [
        f"error: {out}: no space left on the device while writing it; free some disk space and run "
        f"`pipeline {' '.join(command)}` again (the previous predictions.csv, if there was one, is unchanged)"
    ]
    assert held == ["filler"]


@pytest.fixture(scope="module")
def run_workspace(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A copy of the tiny run's workspace (every stage's outputs), for the bad overrides to leave as it is."""
    return Paths(shutil.copytree(tiny_run[0].root, tmp_path_factory.mktemp("overrides") / "run"))


def run_stage_command(stage: Callable, name: str, monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str, str]:
    """`stage`'s command (`python -m pipeline.stages.<stage> NAME`, reading params.yaml), run in this process; its
    exit status, stdout and stderr."""

    def exit_(status: int) -> None:
        raise SystemExit(status)

    monkeypatch.setattr(sys, "argv", [stage.__module__, name])
    monkeypatch.setattr(os, "_exit", exit_)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        stage_command(stage)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


@pytest.mark.parametrize(("override", "key"), BAD_OVERRIDES, ids=[override for override, _ in BAD_OVERRIDES])
def test_every_bad_override_is_one_error_line_naming_its_key_and_the_outputs_stay(
    override: str, key: str, run_workspace: Paths, monkeypatch, capsys
):
    """As `dvc exp run -S OVERRIDE` runs the stage that reads the key: params.yaml rewritten, then its command."""
    raw = tiny_raw()
    apply_override(raw, override)
    (run_workspace.root / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(run_workspace.root)
    outputs = files_outside(run_workspace.root, run_workspace.root / "params.yaml")
    stage, name = STAGE_READING.get(override.split(".")[0].split("=")[0], (download_named, DATASET))

    status, out, err = run_stage_command(stage, name, monkeypatch, capsys)

    assert (status, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("error: params.yaml: ") and key in line
    assert files_outside(run_workspace.root, run_workspace.root / "params.yaml") == outputs


@slow
def test_a_bad_override_through_dvc_exp_run_is_the_stages_one_error_line_and_nothing_is_written(tmp_path):
    root = committed_copy(tmp_path / "repo", tiny_raw())

    ran = attempt(root, sys.executable, "-m", "dvc", "exp", "run", "-S", "train.epochs=abc", f"train@{MODEL}")

    assert ran.returncode != 0
    errors = [line for line in (ran.stdout + ran.stderr).splitlines() if line.startswith("error:")]
    assert errors == ["error: params.yaml: train.epochs: Input should be a valid integer (got 'abc')"]
    tracked = set(run(root, "git", "ls-files").splitlines())
    written = [path for folder in ("data", "models", "metrics") for path in (root / folder).rglob("*")
               if path.is_file() and str(path.relative_to(root)) not in tracked]
    assert written == []

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from tests.helpers.params import tiny_raw

STAGES = ("download", "settings", "split", "preprocess", "audit", "train", "evaluate", "export")
COMMANDS = (*STAGES, "report", "bench", "sanity", "inspect", "make-images", "lr-find", "params", "tune", "push", "pull", "predict", "serve",
            "bench-predict", "bench-accuracy", "bench-repro", "bench-airbench", "dev", "warm", "publish")
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding only a tiny params.yaml, as the CLI expects to be run from a repository root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_raw()))
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, list(args))


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def assert_clean_error(result, *fragments: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_the_app_has_the_stage_commands_and_the_tools():
    assert sorted(typer.main.get_command(app).commands) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = ok(command, "--help")
    assert "Usage:" in result.output
    assert f" {command} " in result.output


def test_no_arguments_shows_help():
    result = invoke()
    assert "Usage:" in result.output
    assert all(command in result.output for command in COMMANDS)


def test_all_stages_run_end_to_end(project):
    downloaded = ok("download", "catsdogs").stdout
    assert downloaded == "catsdogs: 24 samples of 2 classes (cat, dog), names layout, in data/raw/catsdogs\n"
    assert json.loads(ok("settings", "catsdogs").stdout)["aug"]["rotation"] == 0
    assert json.loads(ok("split", "catsdogs").stdout)["train"] == {"cat": 6, "dog": 6, "total": 12}
    assert json.loads(ok("preprocess", "catsdogs").stdout)["test"] == {"kept": 6, "skipped": 0}
    assert json.loads(ok("train", "catsdogs_cnn").stdout)["epoch"] == 2
    metrics = json.loads(ok("evaluate", "catsdogs_cnn", "--device", "cpu").stdout)
    assert metrics["samples"] == 6
    per_class = metrics.pop("per_class")
    assert json.loads((project / "metrics" / "catsdogs_cnn" / "test.json").read_text()) == metrics
    assert set(per_class) == {"cat", "dog"} and metrics["tta"] == "none"
    flipped = json.loads(ok("evaluate", "catsdogs_cnn", "--device", "cpu", "-S", "evaluate.tta=flip").stdout)
    assert flipped["tta"] == "flip"
    for path in ("models/catsdogs_cnn.pt", "metrics/catsdogs_cnn/train/metrics.json", "data/processed/catsdogs"):
        assert (project / path).exists()


def test_set_overrides_apply_to_the_run_but_not_the_file(project):
    ok("download", "catsdogs")
    ok("split", "catsdogs", "-S", "split.catsdogs.train=5", "--set", "split.catsdogs.val=2")
    assert len(pd.read_csv(project / "data/manifests/catsdogs/train.csv")) == 10
    assert len(pd.read_csv(project / "data/manifests/catsdogs/val.csv")) == 4
    assert yaml.safe_load((project / "params.yaml").read_text()) == tiny_raw()


def test_params_option_reads_another_file(project):
    (project / "other.yaml").write_text(yaml.safe_dump(tiny_raw(**{"data.catsdogs.sample_per_class": 13})))
    assert ok("download", "catsdogs", "--params", "other.yaml").stdout.startswith("catsdogs: 26 samples")


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("split", "catsdogs", "-S", "aug.hflip=2"), "aug.hflip"),
        (("split", "catsdogs", "-S", "split.catsdogs.tran=5"), "split.catsdogs.tran: unknown key; did you mean 'train'"),
        (("preprocess", "catsdogs", "-S", "preprocess.catsdogs.color=cmyk"), "preprocess.catsdogs.color"),
        (("train", "catsdogs_cnn", "-S", "models.catsdogs_cnn.epochs=0"), "models.catsdogs_cnn.epochs"),
        (("download", "catsdogs", "-S", "train.device=tpu"), "train.device"),
        (("train", "catsdogs_cnn", "-S", "aug.rotaton=20"), "aug.rotaton: unknown key; did you mean 'rotation'"),
        (("train", "catsdogs_cnn", "-S", "train.epochs=true"), "train.epochs: Input should be a valid integer"),
        (("download", "catsdogs", "-S", "data.catsdogs.source=ftp"), "data.catsdogs.source: Input should be 'sample'"),
    ],
)
def test_a_bad_param_is_one_error_line_naming_the_key_and_nothing_runs(project, args, key):
    assert_clean_error(invoke(*args), key)
    assert not (project / "data").exists()


def test_a_bad_param_from_the_real_command_prints_no_traceback(project):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "split", "catsdogs", "-S", "aug.hflip=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: params.yaml: aug.hflip: should be a probability from 0 to 1, or alternate (got 2)"
    ]


def _stage_process(stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.stages.STAGE ARGS`, the command dvc.yaml runs (it ends its process at once when done)."""
    command = [sys.executable, "-m", f"pipeline.stages.{stage}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_stage_module_dvc_runs_prints_its_report_and_exits_with_its_status_and_its_output_flushed(project):
    downloaded = _stage_process("download", "catsdogs")
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.stdout == "catsdogs: 24 samples of 2 classes (cat, dog), names layout, in data/raw/catsdogs\n"
    done = _stage_process("split", "catsdogs", "-S", "split.catsdogs.train=5", "--params", "params.yaml")
    assert done.returncode == 0, done.stderr
    # the whole report, sorted, though the process skips the interpreter's teardown
    assert json.loads(done.stdout)["train"] == {"cat": 5, "dog": 5, "total": 10}
    assert done.stdout == json.dumps(json.loads(done.stdout), indent=2, sort_keys=True) + "\n"
    assert len(pd.read_csv(project / "data/manifests/catsdogs/train.csv")) == 10
    failed = _stage_process("split", "catsdogs", "-S", "aug.hflip=2")
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.splitlines() == ["error: params.yaml: aug.hflip: should be a probability from 0 to 1, or alternate (got 2)"]
    unknown = _stage_process("split", "dogs")
    assert (unknown.returncode, unknown.stderr.splitlines()) == (
        1, ["error: unknown dataset 'dogs': params.yaml `data` has catsdogs"]
    )
    usage = _stage_process("split")
    assert usage.returncode == 2 and "usage: python -m pipeline.stages.split [-h]" in usage.stderr  # argparse's


def test_the_stage_modules_read_no_command_line_library():
    """A stage module needs neither typer nor the `pipeline` command's code (`pipeline.cli`)."""
    code = (
        "import sys, pipeline.stages.settings, pipeline.stages.split; "
        "print(sorted(name for name in sys.modules if name == 'typer' or name.startswith('pipeline.cli')))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("download", "dogs"), "unknown dataset 'dogs'"),
        (("split", "dogs"), "unknown dataset 'dogs'"),
        (("preprocess", "dogs"), "unknown dataset 'dogs'"),
        (("train", "resnet"), "unknown model 'resnet'"),
        (("evaluate", "resnet"), "unknown model 'resnet'"),
    ],
)
def test_unknown_dataset_or_model_is_a_clean_error(project, args, message):
    assert_clean_error(invoke(*args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nnodes", "2"), "--nnodes 2: add --master ADDR:PORT"),
        (("--nnodes", "2", "--node-rank", "2", "--master", "10.0.0.1:29500"), "--node-rank: 2, but --nnodes 2"),
        (("--node-rank", "1"), "--node-rank: 1, but --nnodes 1"),
        (("--nnodes", "2", "--master", "10.0.0.1"), "--master: '10.0.0.1' is not ADDR:PORT"),
    ],
)
def test_a_node_layout_torchrun_could_not_join_is_a_clean_error_and_nothing_starts(project, args, message):
    assert_clean_error(invoke("train", "catsdogs_cnn", *args), message)
    assert not (project / "models").exists()


def test_a_missing_params_file_is_a_clean_error(project):
    assert_clean_error(invoke("split", "catsdogs", "-p", "nope.yaml"), "nope.yaml: params file not found")


def test_running_a_stage_before_its_input_exists_names_the_stage_to_run(project):
    assert_clean_error(invoke("split", "catsdogs"), "run the download stage first")


def test_training_on_images_too_small_for_the_architecture_is_a_clean_error(project):
    small = ("-S", "preprocess.catsdogs.image_size=16")
    ok("download", "catsdogs")
    ok("split", "catsdogs")
    ok("preprocess", "catsdogs", *small)
    assert_clean_error(invoke("train", "catsdogs_cnn", *small), "at least 22 pixels", "got 16")


def test_make_images_writes_a_folder_in_the_layout_asked(tmp_path):
    result = ok("make-images", str(tmp_path / "shapes"), "--layout", "names", "--per-class", "5", "--classes", "2")
    assert result.stdout == f"{tmp_path / 'shapes'}: 10 images in names layout (Circle: 5, Square: 5)\n"
    names = sorted(path.name.lower() for path in (tmp_path / "shapes").iterdir())
    assert names[:2] == ["circle.0.jpg", "circle.1.jpg"] and len(names) == 10 and names[-1].startswith("square.")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--layout", "tree"], "layout: 'tree' is not one of"), ([], "exists; give make-images a new folder")],
)
def test_make_images_refuses_a_bad_layout_or_an_existing_folder(tmp_path, args, message):
    (tmp_path / "taken").mkdir()
    result = invoke("make-images", str(tmp_path / ("new" if args else "taken")), *args)
    assert result.exit_code == 1 and message in result.output


def test_audit_of_a_dataset_without_a_block_is_a_clean_error(project):
    assert_clean_error(invoke("audit", "catsdogs"), "audit.catsdogs")

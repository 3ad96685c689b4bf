"""End to end: `dvc repro` in a temporary copy of the repository, with tiny params, as a user runs it."""

import json
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pipeline.analysis.repro_times import last_run
from pipeline.cli.warm_server import GPU_DEVICES
from tests.helpers.hub_datasets import write_hub_cache
from tests.helpers.params import tiny_full
from tests.helpers.workspace import HUB_CACHE, attempt, committed_repro, dvc, run, stages_run, warm_env


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the repo with tiny params, after one `dvc repro` run warm, as `make repro` runs it."""
    return committed_repro(tmp_path_factory.mktemp("repo"), tiny_full())


MODELS = tuple(tiny_full()["models"])
DATASETS = tuple(tiny_full()["data"])
TEST_SAMPLES = {"catsdogs": 6, "cifar10": 20, "iris": 30}


@pytest.mark.parametrize("model", MODELS)
def test_repro_writes_test_metrics_and_plots_for_every_model(workspace: Path, model: str) -> None:
    metrics = json.loads((workspace / f"metrics/{model}/test.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1
    assert metrics["loss"] > 0
    assert metrics["samples"] == TEST_SAMPLES[tiny_full()["models"][model]["dataset"]]
    assert set(metrics["macro"]) == {"precision", "recall", "f1"}
    calibration = json.loads((workspace / f"models/{model}.calibration.json").read_text())
    assert metrics["calibration"]["temperature"] == calibration["temperature"]
    for plot in ("misclassified.png", "reliability.png"):
        assert (workspace / f"metrics/{model}/eval/{plot}").read_bytes().startswith(b"\x89PNG")
    assert (workspace / f"models/{model}.pt").is_file()
    export = json.loads((workspace / f"metrics/{model}/export.json").read_text())
    assert export["onnx"]["max_abs_diff"] <= 1e-4 and export["program"]["max_abs_diff"] <= 1e-4
    assert (workspace / f"models/{model}.onnx").is_file() and (workspace / f"models/{model}.pt2").is_file()


def test_bench_repro_splits_every_stage_of_the_run(workspace: Path) -> None:
    output = run(workspace, "pipeline", "bench-repro")
    for stage in ("download@catsdogs", "split@cifar10", *(f"train@{model}" for model in MODELS)):
        assert f"\n{stage} " in output
    assert f"train ({len(MODELS)})" in output and "training" in output


def test_metrics_show_lists_split_train_and_test_metrics_of_every_model(workspace: Path) -> None:
    shown = json.loads(dvc(workspace, "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]
    assert {"metrics/catsdogs/split.json", "metrics/cifar10/split.json"} <= set(files)
    assert {f"metrics/{model}/test.json" for model in MODELS} <= set(files)
    assert files["metrics/catsdogs_cnn/train/metrics.json"]["data"]["step"] == 2
    assert files["metrics/cifar10/split.json"]["data"]["val"]["total"] == 10


def test_plots_show_has_every_models_curves_and_evaluation_plots(workspace: Path) -> None:
    shown = json.loads(dvc(workspace, "plots", "show", "--json"))["data"]
    for model in MODELS:
        curves = f"metrics/{model}/train/plots/metrics"
        assert {f"{curves}/val/acc.tsv", f"{curves}/val/p_true/q50.tsv", f"{curves}/train/near_boundary.tsv"} <= set(
            shown
        )
        assert f"metrics/{model}/eval/reliability.png" in shown
    assert "metrics/iris_mlp/eval/misclassified.png" in shown


def test_second_repro_has_nothing_to_do(workspace: Path) -> None:
    output = dvc(workspace, "repro")
    assert "Running stage" not in output
    assert "up to date" in dvc(workspace, "status")


def test_every_torch_stage_of_the_warm_repro_ran_warm_and_a_cold_run_writes_the_same_bytes(workspace: Path) -> None:
    """The warm repro ran each train, evaluate and export stage in a warm process; running some again cold (plain
    `dvc repro`) writes every output byte as they were (the model cards aside: they name the commit, which is newer
    now)."""
    if any(Path(device).exists() for device in GPU_DEVICES):
        pytest.skip("no warm server on a machine with a GPU: every stage ran cold")
    torch_stages = [split for split in last_run(workspace) if split.group in ("train", "evaluate", "export")]
    assert len(torch_stages) == 3 * len(MODELS) and all(split.warm for split in torch_stages)
    targets = ("train@iris_mlp", "evaluate@iris_mlp", "export@iris_mlp", "evaluate@catsdogs_cnn")
    warm = _output_bytes(workspace, "iris_mlp", "catsdogs_cnn")
    assert stages_run(dvc(workspace, "repro", "--force", "--single-item", *targets, warm=False)) == set(targets)
    assert _output_bytes(workspace, "iris_mlp", "catsdogs_cnn") == warm
    run(workspace, "git", "checkout", "dvc.lock")  # the cards as they were: later tests see nothing changed
    dvc(workspace, "checkout", "-q")


def _output_bytes(root: Path, *models: str) -> dict[str, bytes]:
    """Every file the models' train, evaluate and export stages wrote, but their cards."""
    files = [path for model in models for pattern in (f"models/{model}.*", f"metrics/{model}/**/*")
             for path in root.glob(pattern)]
    return {str(path): path.read_bytes() for path in files if path.is_file() and not path.name.endswith(".card.md")}


def test_one_model_runs_alone_as_an_experiment(workspace: Path) -> None:
    output = dvc(workspace, "exp", "run", "evaluate@cifar_cnn_bn", "-S", "+models.cifar_cnn_bn.lr=0.01")
    assert stages_run(output) == {"model_settings@cifar_cnn_bn", "train@cifar_cnn_bn", "evaluate@cifar_cnn_bn"}


def test_one_model_reruns_alone_with_a_glob_target(workspace: Path) -> None:
    params = workspace / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["models"]["cifar_mlp"]["lr"] = 0.02
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        output = dvc(workspace, "repro", "--glob", "evaluate*cifar_mlp*")
    finally:
        run(workspace, "git", "checkout", "params.yaml", "dvc.lock")
        dvc(workspace, "checkout", "-q")
    assert stages_run(output) == {"model_settings@cifar_mlp", "train@cifar_mlp", "evaluate@cifar_mlp"}


# One model per dataset stands for the others (every model's stages come from the same foreach templates): the
# experiment reruns 6 stage processes, not the 18 of every model (about 3 minutes less).
AUG_MODELS = ("catsdogs_cnn", "cifar_mlp", "iris_mlp")


def test_aug_change_reruns_only_train_evaluate_and_export(workspace: Path) -> None:
    targets = [f"{stage}@{model}" for stage in ("evaluate", "export") for model in AUG_MODELS]
    output = dvc(workspace, "exp", "run", "-S", "aug.rotation=20", *targets)
    augmented = [model for model in AUG_MODELS if model != "iris_mlp"]  # a table's rows are never augmented
    trained = {f"{stage}@{model}" for stage in ("train", "evaluate", "export") for model in augmented}
    assert stages_run(output) == {f"settings@{dataset}" for dataset in DATASETS} | trained
    experiments = json.loads(dvc(workspace, "exp", "show", "--json"))
    rotations = {
        run["data"]["params"]["params.yaml"]["data"]["aug"]["rotation"]
        for baseline in experiments
        for run in [baseline, *(exp for group in baseline.get("experiments") or [] for exp in group["revs"])]
        if run.get("data")
    }
    assert {0, 20} <= rotations


HUB_ID = "owner/cifar10"
FIRST, SECOND = "a1" * 20, "b2" * 20  # two commits of it (hex with letters: digits alone are read as a number by -S)


def test_switching_to_a_hub_dataset_reruns_exactly_its_stages_and_its_models_and_so_does_a_new_commit(
    workspace: Path,
) -> None:
    """Real data from the Hub: the sample's CIFAR-10 images (one fewer) as a Hub dataset in the Hub's cache (the
    tests' HF_HUB_CACHE), as a first download leaves it, read offline. `source: hf` by its id re-runs that dataset's
    stages and its model's, nothing else; cifar_mlp's sample budget (one epoch) no longer applies: it trains its
    block's two. Pinning another commit (one image fewer still) re-runs the same stages."""
    assert json.loads((workspace / "metrics/cifar_mlp/train/metrics.json").read_text())["step"] == 1
    with zipfile.ZipFile(workspace / "data/raw/cifar10/images.zip") as archive:
        files = {name: archive.read(name) for name in sorted(archive.namelist()) if name.endswith(".png")}
    classes = sorted({name.split("/")[1] for name in files})
    training = [name for name in files if name.startswith("train/")]
    first = {name: blob for name, blob in files.items() if name != training[0]}
    second = {name: blob for name, blob in first.items() if name != training[-1]}
    write_hub_cache(Path(warm_env()[HUB_CACHE]), HUB_ID, {FIRST: first, SECOND: second}, classes)
    targets = [f"{stage}@{model}" for stage in ("evaluate", "export") for model in AUG_MODELS]
    cifar = {f"{stage}@cifar10" for stage in ("download", "settings", "split", "preprocess")}
    expected = cifar | {f"{stage}@cifar_mlp" for stage in ("train", "evaluate", "export")}
    pinned = ["-S", "data.cifar10.source=hf", "-S", f"data.cifar10.path={HUB_ID}", "-S", f"+data.cifar10.revision={FIRST}"]
    output = dvc(workspace, "exp", "run", *pinned, *targets)
    assert stages_run(output) == expected
    assert json.loads((workspace / "metrics/cifar_mlp/train/metrics.json").read_text())["step"] == 2
    index = json.loads((workspace / "data/raw/cifar10/index.json").read_text())
    assert (index["revision"], index["classes"]) == (FIRST, classes)
    assert json.loads((workspace / "metrics/cifar_mlp/test.json").read_text())["samples"] == TEST_SAMPLES["cifar10"]
    output = dvc(workspace, "exp", "run", "-S", f"data.cifar10.revision={SECOND}", *targets)
    assert stages_run(output) == expected
    assert json.loads((workspace / "data/raw/cifar10/index.json").read_text())["revision"] == SECOND


def _resolved(root: Path, model: str) -> dict:
    return json.loads((root / f"metrics/{model}/train/resolved_params.json").read_text())


def test_an_override_the_sample_budget_shadows_is_refused_and_the_key_it_names_takes_effect(workspace: Path) -> None:
    """`-S models.cifar_cnn_bn.epochs=3` on the sample changes nothing that trains: the run stops, naming the key
    to set; set as it says, 3 epochs run and resolved_params.json (which `dvc exp show` shows) says so."""
    run(workspace, "git", "checkout", "params.yaml", "dvc.lock")  # the sample, as the first run left it
    dvc(workspace, "checkout", "-q")
    refused = attempt(workspace, sys.executable, "-m", "dvc", "exp", "run", "-S", "models.cifar_cnn_bn.epochs=3",
                      "train@cifar_cnn_bn", env=warm_env())
    assert refused.returncode != 0
    assert "set models.cifar_cnn_bn.sample.epochs=3 instead" in refused.stdout + refused.stderr
    run(workspace, "git", "checkout", "params.yaml")  # dvc exp run left its -S in params.yaml
    try:
        dvc(workspace, "exp", "run", "-S", "models.cifar_cnn_bn.sample.epochs=3", "train@cifar_cnn_bn")
        assert json.loads((workspace / "metrics/cifar_cnn_bn/train/metrics.json").read_text())["step"] == 3
        resolved = _resolved(workspace, "cifar_cnn_bn")
        assert (resolved["epochs"], resolved["from"]["epochs"]) == (3, "models.cifar_cnn_bn.sample.epochs")
        shown = json.loads(dvc(workspace, "exp", "show", "--json"))
        ran = {
            exp["data"]["metrics"]["metrics/cifar_cnn_bn/train/resolved_params.json"]["data"]["epochs"]
            for baseline in shown
            for exp in [baseline, *(rev for group in baseline.get("experiments") or [] for rev in group["revs"])]
            if (exp.get("data") or {}).get("metrics", {}).get("metrics/cifar_cnn_bn/train/resolved_params.json")
        }
        assert {1, 3} <= ran
    finally:
        run(workspace, "git", "checkout", "params.yaml", "dvc.lock")
        dvc(workspace, "checkout", "-q")


def test_turning_calibration_off_reruns_evaluate_and_export_never_train(workspace: Path) -> None:
    """Last in the module: it leaves `evaluate.calibrate` off in the workspace, which every other model's
    model_settings and evaluate stages depend on."""
    model = "catsdogs_cnn"
    output = dvc(workspace, "exp", "run", "-S", "evaluate.calibrate=false", f"export@{model}")
    assert stages_run(output) == {f"model_settings@{model}", f"evaluate@{model}", f"export@{model}"}
    assert json.loads((workspace / f"metrics/{model}/test.json").read_text())["calibration"]["temperature"] == 1.0

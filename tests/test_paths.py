"""dvc.yaml and pipeline/paths.py must name the same files, so the pipeline and DVC cannot drift apart."""

from dvc.repo import Repo

from pipeline.config.resolution import RESOLVED_PARAMS_FILE
from pipeline.core.paths import AUDIT_FINDINGS, Paths
from tests.helpers.params import REPO, repo_params


def _declared_outputs() -> set[str]:
    with Repo(str(REPO)) as repo:
        return {str(out.def_path) for stage in repo.index.stages for out in stage.outs}


def _expected_outputs() -> set[str]:
    params = repo_params()
    paths = Paths()
    expected = set()
    for dataset in params["data"]:
        expected |= {
            paths.raw_dir(dataset),
            paths.manifest_dir(dataset),
            paths.processed_dir(dataset),
            paths.split_metrics(dataset),
            paths.split_plots(dataset),
            paths.preprocess_metrics(dataset),
            *(paths.settings_file(dataset, block) for block in ("split", "preprocess", "aug")),
        }
    for dataset in params.get("audit") or {}:
        folder = paths.audit_dir(dataset)
        expected |= {*(folder / f"{name}.csv" for name in AUDIT_FINDINGS), folder / "summary.json", folder / "plots"}
    for model in params["models"]:
        train_dir = paths.train_dir(model)
        expected |= {
            paths.model_settings_file(model),
            paths.weights_dir(model),
            paths.model_file(model),
            paths.model_card(model),
            paths.calibration_file(model),
            train_dir / "metrics.json",
            train_dir / RESOLVED_PARAMS_FILE,
            train_dir / "plots" / "metrics",
            train_dir / "plots" / "images",
            paths.test_metrics(model),
            paths.confusion(model),
            paths.per_class(model),
            paths.reliability(model),
            paths.misclassified(model),
            paths.top_losses(model),
            paths.confused(model),
            paths.onnx_file(model),
            paths.program_file(model),
            paths.export_metrics(model),
        }
    return {str(path) for path in expected}


def test_dvc_yaml_declares_exactly_the_paths_the_stages_write() -> None:
    assert _declared_outputs() == _expected_outputs()

"""dvc.yaml's `artifacts`, the model registry's view of the models: exactly the models of params.yaml, each with its
model file and its dataset and architecture as labels (dvc.yaml cannot generate them from params: no foreach outside
`stages`), and found by DVC's own tools in a git repository: `dvc.api.artifacts_show` and `dvc artifacts get`."""

import shutil
from pathlib import Path

import dvc.api
import pytest
import yaml
from dvc.repo import Repo

from pipeline.core.paths import Paths
from tests.helpers.params import REPO, repo_params
from tests.helpers.workspace import dvc as run_dvc
from tests.helpers.workspace import locked_copy, run


def _artifacts() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]


def test_the_artifacts_are_exactly_the_models_of_params_with_their_dataset_and_arch():
    models = repo_params()["models"]
    assert set(_artifacts()) == set(models)
    for name, artifact in _artifacts().items():
        assert artifact["path"] == str(Paths().model_file(name))
        assert artifact["type"] == "model"
        assert artifact["desc"].strip()
        assert sorted(artifact["labels"]) == sorted([f"dataset:{models[name]['dataset']}", f"arch:{models[name]['arch']}"])


def test_the_pipeline_files_parse_with_libyaml_as_dvc_reads_them():
    """DVC reads dvc.yaml, dvc.lock and params.yaml with ruamel's safe loader, which uses libyaml's C parser when
    ruamel.yaml.clib is installed (a dependency, for speed). libyaml is stricter than the pure-Python parser: a plain
    `dataset:catsdogs` in a flow list, for one, is an error there."""
    from dvc.utils.serialize import parse_yaml
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is not installed: run `make sync`"
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        assert parse_yaml((REPO / name).read_text(), name)


def _tagged(repo: Path, *names: str) -> None:
    """Commit everything, and register a first version of each artifact as GTO (`gto register`) does: an annotated
    tag `<name>@v1.0.0`, which is what DVC's registry commands look for."""
    git = ("git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.com")
    run(repo, *git, "add", "-A")
    run(repo, *git, "commit", "-qm", "models")
    for name in names:
        run(repo, *git, "tag", "-a", f"{name}@v1.0.0", "-m", f"Registering {name} v1.0.0")


def test_dvc_reads_every_model_as_an_artifact_and_finds_a_registered_one_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    repo = tmp_path / "repo"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    Repo.init(str(repo)).close()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, repo / name)
    _tagged(repo, "cifar_cnn_bn")
    with Repo(str(repo)) as opened:
        read = opened.artifacts.read()["dvc.yaml"]
    assert {name: artifact.path for name, artifact in read.items()} == {
        name: str(Paths().model_file(name)) for name in repo_params()["models"]
    }
    assert dvc.api.artifacts_show("cifar_cnn_bn", repo=str(repo))["path"] == str(Paths().model_file("cifar_cnn_bn"))


@pytest.mark.slow
def test_dvc_artifacts_get_downloads_a_model_from_a_repository_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    repo = locked_copy(tmp_path / "repo")  # every output a placeholder in DVC's cache, as after `dvc repro`
    (repo / "models" / "catsdogs_cnn.pt").write_text("the weights\n")
    run_dvc(repo, "commit", "--force", "--quiet", "train@catsdogs_cnn")
    _tagged(repo, "catsdogs_cnn")
    (repo / "models" / "catsdogs_cnn.pt").unlink()
    out = tmp_path / "downloaded.pt"
    run_dvc(repo, "artifacts", "get", ".", "catsdogs_cnn", "-o", str(out))
    assert out.read_text() == "the weights\n"

"""`pipeline publish`: the folder a dry run writes (the model, its ONNX export and calibration, labels.json and a
card the Hub's own parser reads), the upload of exactly that folder through a faked Hub client, and the refusals
(no token, a missing file, a stale export). Nothing here touches the network."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard
from test_cli import assert_clean_error, invoke

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.store import load_meta
from pipeline.models.calibration import save_calibration
from pipeline.sharing.publish import LABELS, Upload, publish, write_folder
from pipeline.stages.export import export
from tests.helpers.datasets import prepare
from tests.helpers.model_files import calibration_of, untrained_model
from tests.helpers.params import tiny_raw

MODEL, REPO = "catsdogs_cnn", "alice/catsdogs-cnn"
TEST_FIGURES = {"accuracy": 0.8333, "loss": 0.5, "ece": 0.0712, "macro": {"precision": 0.8, "recall": 0.8, "f1": 0.81}}
CARD_TEXT = "# Model card: catsdogs_cnn\n\n## What it is\n\nA tiny test model.\n"
PT, ONNX = f"models/{MODEL}.pt", f"models/{MODEL}.onnx"
FILES = sorted([f"{MODEL}.pt", f"{MODEL}.onnx", f"{MODEL}.calibration.json", LABELS, "README.md"])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Paths:
    """The tiny catsdogs sample prepared, an untrained model with a calibration, its export, test.json and card."""
    paths = prepare(Paths(tmp_path_factory.mktemp("project")), parse_params(tiny_raw()), "catsdogs")
    model_file = untrained_model(paths.model_file(MODEL), load_meta(paths, "catsdogs"))
    save_calibration(model_file, calibration_of(0.5, model_file))
    export(MODEL, paths)
    paths.test_metrics(MODEL).write_text(json.dumps(TEST_FIGURES))
    paths.model_card(MODEL).write_text(CARD_TEXT)
    return paths


@pytest.fixture
def project(built, tmp_path, monkeypatch) -> Paths:
    """A copy of the built project, the working directory, with a (fake) token in HF_TOKEN."""
    root = shutil.copytree(built.root, tmp_path / "project")
    monkeypatch.chdir(root)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    return Paths(root)


def test_a_dry_run_writes_the_folder_and_a_card_the_hub_reads(project, tmp_path):
    folder = tmp_path / "out"
    result = invoke("publish", MODEL, "--repo", REPO, "--dry-run", str(folder))
    assert result.exit_code == 0, result.output
    assert "nothing uploaded" in result.stdout
    assert sorted(path.name for path in folder.iterdir()) == FILES
    for name in (f"{MODEL}.pt", f"{MODEL}.onnx", f"{MODEL}.calibration.json"):
        assert (folder / name).read_bytes() == (project.root / "models" / name).read_bytes()
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "onnx" and card.data.pipeline_tag == "image-classification"
    assert card.data.datasets == ["catsdogs"] and "image-classification" in card.data.tags
    results = {result.metric_type: result for result in card.data.eval_results}
    assert {result.dataset_split for result in results.values()} == {"test"}
    figures = (results["accuracy"].metric_value, results["ece"].metric_value, results["f1"].metric_value)
    assert figures == (0.8333, 0.0712, 0.81)
    assert CARD_TEXT.strip() in card.text and f'hf_hub_download("{REPO}", "{MODEL}.onnx")' in card.text


def test_labels_hold_the_classes_in_order_and_the_preprocessing(project, tmp_path):
    write_folder(MODEL, REPO, tmp_path / "out", project, dataset="bob/cats-and-dogs")
    labels = json.loads((tmp_path / "out" / LABELS).read_text())
    assert labels["classes"] == ["cat", "dog"] and labels["preprocessing"]["classes"] == ["cat", "dog"]
    assert (labels["kind"], labels["preprocessing"]["size"], labels["temperature"]) == ("images", 32, 0.5)
    assert ModelCard.load(tmp_path / "out" / "README.md").data.datasets == ["bob/cats-and-dogs"]


def test_the_upload_sends_exactly_the_dry_run_folder(project, tmp_path, monkeypatch):
    write_folder(MODEL, REPO, tmp_path / "dry", project)
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        sent = Path(kwargs["folder_path"])
        calls["files"] = {path.name: path.read_bytes() for path in sent.iterdir()}

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    result = invoke("publish", MODEL, "--repo", REPO, "--private", "-m", "first model")
    assert result.exit_code == 0, result.output
    assert f"https://huggingface.co/{REPO}" in result.stdout
    assert calls["create_repo"] == (REPO, {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["upload_folder"]["repo_id"] == REPO and calls["upload_folder"]["commit_message"] == "first model"
    assert calls["files"] == {path.name: path.read_bytes() for path in (tmp_path / "dry").iterdir()}


def test_a_revision_is_a_branch_made_before_the_commit(project):
    class FakeApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, **kwargs):
            self.calls.append("create_repo")
            return repo_id

        def create_branch(self, repo_id, **kwargs):
            self.calls.append(("create_branch", kwargs["branch"]))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload_folder", kwargs["revision"]))

    api = FakeApi()
    publish(MODEL, Upload(REPO, revision="v1"), project, api=api)
    assert api.calls == ["create_repo", ("create_branch", "v1"), ("upload_folder", "v1")]


def test_without_a_token_one_line_names_hf_token_and_nothing_is_sent(project, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("pipeline.sharing.publish.get_token", lambda: None)
    monkeypatch.setattr(HfApi, "create_repo", lambda *args, **kwargs: pytest.fail("nothing may be sent"))
    assert_clean_error(invoke("publish", MODEL, "--repo", REPO), "HF_TOKEN", "hf auth login", "huggingface-cli login")


def test_a_missing_export_names_the_stage_to_run(project, tmp_path):
    project.onnx_file(MODEL).unlink()
    result = invoke("publish", MODEL, "--repo", REPO, "--dry-run", str(tmp_path / "out"))
    assert_clean_error(result, f"dvc repro export@{MODEL}")
    assert not (tmp_path / "out").exists()


def test_a_missing_card_names_the_evaluate_stage(project, tmp_path):
    project.model_card(MODEL).unlink()
    with pytest.raises(PipelineError, match=f"dvc repro evaluate@{MODEL}"):
        write_folder(MODEL, REPO, tmp_path / "out", project)


def test_an_export_of_another_model_is_refused(project, tmp_path):
    other = load_meta(project, "catsdogs").model_copy(update={"classes": ["a", "b"]})
    untrained_model(project.model_file(MODEL), other)
    save_calibration(project.model_file(MODEL), calibration_of(0.5, project.model_file(MODEL)))
    with pytest.raises(PipelineError, match=f"exported from another model.*dvc repro export@{MODEL}"):
        write_folder(MODEL, REPO, tmp_path / "out", project)


def test_a_model_file_changed_since_dvc_lock_s_export_is_refused(project, tmp_path):
    md5 = {path: hashlib.md5((project.root / path).read_bytes()).hexdigest() for path in (PT, ONNX)}
    run = {"deps": [{"path": PT, "md5": md5[PT]}], "outs": [{"path": ONNX, "md5": md5[ONNX]}]}
    lock = {"schema": "2.0", "stages": {f"export@{MODEL}": run}}
    project.lock_file().write_text(yaml.safe_dump(lock))
    write_folder(MODEL, REPO, tmp_path / "agrees", project)
    lock["stages"][f"export@{MODEL}"]["deps"][0]["md5"] = "0" * 32
    project.lock_file().write_text(yaml.safe_dump(lock))
    with pytest.raises(PipelineError, match=f"{MODEL}.pt: not the file export@{MODEL} last exported.*dvc repro"):
        write_folder(MODEL, REPO, tmp_path / "out", project)


@pytest.mark.parametrize("repo", ["catsdogs", "alice/", "a/b/c", "alice/cats dogs"])
def test_a_repo_id_that_is_not_owner_slash_name_is_refused(project, tmp_path, repo):
    result = invoke("publish", MODEL, "--repo", repo, "--dry-run", str(tmp_path / "out"))
    assert_clean_error(result, "--repo", "OWNER/NAME")


def test_a_dry_run_into_a_folder_with_files_is_refused(project, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "other.txt").write_text("mine")
    result = invoke("publish", MODEL, "--repo", REPO, "--dry-run", str(tmp_path / "out"))
    assert_clean_error(result, "not an empty folder")

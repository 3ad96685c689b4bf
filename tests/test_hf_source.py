"""`source: hf`: Hugging Face Hub datasets, as a local folder of parquet shards or by id with the Hub client faked at
its boundary (`huggingface_hub.snapshot_download`): never the network."""

import io
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
from PIL import Image as PILImage
from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
from pydantic import ValidationError
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.datasets import DataSource, PreprocessParams, SplitParams
from pipeline.config.params import load_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.raw import read_index, read_samples
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from pipeline.stages.split import split
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES
from tests.helpers.cifar_files import BATCH_SIZES, expected_images, local, official_tar, random_batches
from tests.helpers.hub_datasets import string_labels, write_hub_folder, write_hub_rows
from tests.helpers.image_trees import class_images, truncated_jpeg, write_tree
from tests.helpers.params import REPO

CLASSES = ["bird", "cat", "dog"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    """Split folders' files: 5 train and 2 test images of each class."""
    counts = dict.fromkeys(CLASSES, 5)
    return {**class_images(counts, "train/"), **class_images(dict.fromkeys(CLASSES, 2), "test/", start=50)}


@pytest.fixture
def hub_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    return write_hub_folder(tmp_path / "hub", files, CLASSES)


def hub(path: Path | str, **keys: str) -> DataSource:
    return DataSource(source="hf", path=str(path), **keys)


def test_a_parquet_folder_is_read_into_the_raw_layout(hub_folder, files, paths):
    index = download("mine", hub(hub_folder), 7, paths)
    samples = read_samples(paths, "mine")
    assert index.classes == tuple(CLASSES) and index.layout == "split_folders"
    assert sorted(samples["path"]) == sorted(files)
    assert set(samples["part"]) == {"train", "test"}  # the Hub's test split is our test part, as CIFAR-10's is
    assert (samples["skip"] == "").all()


def test_classes_come_in_the_class_labels_order(tmp_path, files, paths):
    order = ["dog", "bird", "cat"]
    index = download("mine", hub(write_hub_folder(tmp_path / "hub", files, order)), 7, paths)
    assert index.classes == tuple(order)


def test_the_shard_hash_is_recorded_and_follows_the_files(hub_folder, files, paths, tmp_path):
    first = download("mine", hub(hub_folder), 7, paths).revision
    assert first.startswith("sha256:") and json.loads(paths.raw_index("mine").read_text())["revision"] == first
    assert read_index(paths, "mine").revision == first
    other = write_hub_folder(tmp_path / "other", {**files, "train/cat/extra.png": files["train/cat/2.png"]}, CLASSES)
    assert download("mine", hub(other), 7, paths).revision != first


def test_other_sources_write_no_revision(paths, tmp_path, files):
    download("mine", DataSource(path=str(write_tree(tmp_path / "tree", files, "folder"))), 7, paths)
    assert "revision" not in json.loads(paths.raw_index("mine").read_text())


def test_corrupt_images_are_kept_unusable_and_counted(tmp_path, files, paths):
    broken = {**files, "train/cat/broken.jpg": truncated_jpeg(), "train/dog/empty.png": b""}
    index = download("mine", hub(write_hub_folder(tmp_path / "hub", broken, CLASSES)), 7, paths)
    samples = read_samples(paths, "mine").set_index("path")
    assert samples.loc["train/cat/broken.jpg", "skip"].startswith("truncated JPEG")
    assert samples.loc["train/dog/empty.png", "skip"] == "empty file"
    assert sum(index.unusable.values()) == 2


def test_images_without_a_stored_name_are_named_by_row_and_format(tmp_path, files, paths):
    download("mine", hub(write_hub_folder(tmp_path / "hub", files, CLASSES, keep_names=False, shards=2)), 7, paths)
    names = list(read_samples(paths, "mine")["path"])
    assert len(set(names)) == len(files)
    assert {name.rsplit(".", 1)[1] for name in names} == {"jpg", "png"}
    assert (read_samples(paths, "mine")["skip"] == "").all()  # each suffix matches the bytes' format


def test_a_label_column_of_strings_gives_its_values_as_classes(tmp_path, files, paths):
    rows = [(blob, name.split("/")[1]) for name, blob in files.items() if name.startswith("train/")]
    index = download("mine", hub(string_labels(tmp_path / "hub", rows)), 7, paths)
    assert index.classes == tuple(CLASSES)


def test_an_unknown_column_names_the_key_and_lists_the_columns(hub_folder, paths):
    with pytest.raises(PipelineError, match=r"data\.mine\.image_column: no column 'image'.*img, label"):
        download("mine", hub(hub_folder, image_column="image"), 7, paths)


def test_a_folder_without_parquet_shards_is_refused(tmp_path, paths):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=r"data\.mine\.path: .*no train split in parquet shards"):
        download("mine", hub(tmp_path / "empty"), 7, paths)


def test_a_revision_for_a_local_folder_is_refused(hub_folder, paths):
    with pytest.raises(PipelineError, match=r"data\.mine\.revision: .*local folder"):
        download("mine", hub(hub_folder, revision="main"), 7, paths)


def test_hub_keys_need_source_hf():
    with pytest.raises(ValidationError, match="image_column applies to source 'hf' only"):
        DataSource(path="x", image_column="img")


def _fake_snapshot(monkeypatch, result: Path | Exception) -> list[dict]:
    """Replace the Hub client's snapshot download; returns the calls it gets."""
    calls: list[dict] = []

    def snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        if isinstance(result, Exception):
            raise result
        return str(result)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def _hub_error(kind: type[Exception]) -> Exception:
    """The Hub client's exception of `kind`, made without the HTTP response its constructor reads."""
    error = kind.__new__(kind)
    Exception.__init__(error, "refused")
    return error


def test_a_hub_id_is_read_from_its_snapshot_and_its_commit_recorded(tmp_path, files, paths, monkeypatch):
    snapshot = write_hub_folder(tmp_path / "snapshots" / COMMIT, files, CLASSES)
    calls = _fake_snapshot(monkeypatch, snapshot)
    index = download("mine", hub("hf:owner/name", revision="v1"), 7, paths)
    assert calls[0]["repo_id"] == "owner/name" and calls[0]["repo_type"] == "dataset" and calls[0]["revision"] == "v1"
    assert index.revision == COMMIT and len(read_samples(paths, "mine")) == len(files)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (LocalEntryNotFoundError, r"owner/name .*not in the Hub's cache \(.*\).*network on"),
        (GatedRepoError, r"owner/name is gated.*HF_TOKEN"),
        (RepositoryNotFoundError, r"owner/name is not a dataset.*private.*HF_TOKEN"),
    ],
)
def test_hub_refusals_say_what_to_do(monkeypatch, paths, error, message):
    _fake_snapshot(monkeypatch, _hub_error(error))
    with pytest.raises(PipelineError, match=rf"data\.mine\.path: {message}"):
        download("mine", hub("owner/name"), 7, paths)
    assert not paths.raw_dir("mine").exists()


def test_the_same_images_give_the_same_split_and_store_as_a_folder_or_as_parquet(tmp_path, files, hub_folder):
    folder = write_tree(tmp_path / "folder", files, "folder")
    results = []
    for name, data in (("as_folder", DataSource(path=str(folder))), ("as_hub", hub(hub_folder))):
        paths = Paths(tmp_path / name)
        download("mine", data, 7, paths)
        split("mine", SplitParams(val=1, test=1), 7, paths)
        preprocess("mine", PreprocessParams(image_size=16), paths)
        results.append(_split_and_store(paths, "mine"))
    as_folder, as_hub = results
    assert as_folder.keys() == as_hub.keys() and as_folder
    assert as_folder == as_hub


@pytest.mark.usefixtures("offline_cifar_cache")
def test_the_hubs_cifar10_gives_the_archives_split_and_store(tmp_path):
    """uoft-cs/cifar10 holds the archive's images as PNGs encoded from its arrays, in the archive's order, without
    file names: read with `source: hf`, they split and preprocess to the bytes the official archive gives."""
    batches = random_batches(dict.fromkeys(BATCH_SIZES, 12))  # two training images a class at least
    rows: dict[str, list[tuple[bytes, int]]] = {"train": [], "test": []}
    for name, pixels in expected_images(batches).items():
        part, cls, _ = name.split("/")
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, format="PNG")
        rows[part].append((buffer.getvalue(), CIFAR10_CLASSES.index(cls)))
    hub_copy = write_hub_rows(tmp_path / "hub", rows, list(CIFAR10_CLASSES))
    archive = official_tar(tmp_path / "user", batches)
    results = []
    for name, data in (("archive", local(archive)), ("hub", hub(hub_copy))):
        paths = Paths(tmp_path / name)
        download("cifar10", data, 7, paths)
        split("cifar10", SplitParams(val=0.25), 7, paths)
        preprocess("cifar10", PreprocessParams(image_size=32, color="rgb"), paths)
        results.append(_split_and_store(paths, "cifar10"))
    from_archive, from_hub = results
    assert from_archive.keys() == from_hub.keys() and from_archive
    assert from_archive == from_hub


def _split_and_store(paths: Paths, dataset: str) -> dict[str, bytes]:
    """The bytes of the dataset's manifests and preprocessed arrays, by path under the project."""
    return {
        path.relative_to(paths.root).as_posix(): path.read_bytes()
        for folder in (paths.manifest_dir(dataset), paths.processed_dir(dataset))
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_inspect_writes_a_hub_id_pinned_at_the_commit_read(tmp_path, files, monkeypatch):
    _fake_snapshot(monkeypatch, write_hub_folder(tmp_path / "snapshots" / COMMIT, files, CLASSES))
    params = Path(shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml"))
    result = CliRunner().invoke(app, ["inspect", "hf:owner/pets", "--write", "pets", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "split_folders layout, 3 classes, 21 images" in result.stdout and f"revision {COMMIT}" in result.stdout
    data = load_params(params).data["pets"]
    assert (data.source, data.path, data.revision, data.classes) == ("hf", "owner/pets", COMMIT, None)


def test_inspect_detects_a_folder_of_parquet_shards(hub_folder, tmp_path):
    params = Path(shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml"))
    result = CliRunner().invoke(app, ["inspect", str(hub_folder), "--write", "pets", "--params", str(params)])
    assert result.exit_code == 0, result.output
    data = load_params(params).data["pets"]
    assert (data.source, data.path, data.revision) == ("hf", str(hub_folder), None)

import io
import re
import zipfile
from pathlib import Path

import kagglehub
import kagglehub.config
import pytest
import requests
from kagglehub.exceptions import KaggleApiHTTPError

from pipeline.config.datasets import CatsDogsData, DataSource
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.raw import read_index, read_samples
from pipeline.data.sources.sample import catsdogs_sample
from pipeline.stages.download import download, download_named
from tests.helpers.image_trees import class_images, named_images, write_tree
from tests.helpers.params import tiny_raw
from tests.helpers.refusals import refusal_writing_nothing_outside

PATH_KEY = r"data\.catsdogs[.:]"
RULES_URL = "https://www.kaggle.com/competitions/dogs-vs-cats/rules"


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    """A handful of sample images, by file name (`cat.0.jpg`)."""
    return {name.rsplit("/", 1)[-1]: data for name, data in catsdogs_sample(3, seed=11)}


@pytest.fixture(scope="module")
def expected(images) -> list[dict[str, str]]:
    return [{"name": name, "class": name.split(".")[0]} for name in sorted(images, key=_natural)]


def listed(paths: Paths) -> list[dict[str, str]]:
    """The raw samples as file names (the folders above them depend on the source) and classes, in order."""
    frame = read_samples(paths, "catsdogs")
    return [{"name": path.rsplit("/", 1)[-1], "class": cls} for path, cls in zip(frame["path"], frame["class"], strict=True)]


def _natural(name: str) -> tuple[str, int]:
    cls, number, _ = name.split(".")
    return cls, int(number)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def train_zip(images: dict[str, bytes]) -> bytes:
    return zip_bytes({f"train/{name}": data for name, data in images.items()})


def competition_members(images: dict[str, bytes]) -> dict[str, bytes]:
    test1 = zip_bytes({"test1/1.jpg": next(iter(images.values())), "test1/2.jpg": b"\xff\xd8\xff"})
    return {"train.zip": train_zip(images), "test1.zip": test1, "sampleSubmission.csv": b"id,label\n1,0\n"}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def local(path: Path) -> CatsDogsData:
    return CatsDogsData(source="local", path=str(path))


def archive_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def assert_nothing_written(paths: Paths) -> None:
    raw = paths.raw_dir("catsdogs")
    assert not paths.raw_archive("catsdogs").exists()
    assert not raw.exists() or list(raw.iterdir()) == []


def test_sample_source_writes_the_raw_archive(paths, tiny_params):
    count = download("catsdogs", tiny_params.data["catsdogs"], tiny_params.seed, paths).samples

    per_class = tiny_params.data["catsdogs"].sample_per_class
    frame = read_samples(paths, "catsdogs")
    assert count == len(frame) == 2 * per_class
    assert frame["class"].value_counts().to_dict() == {"cat": per_class, "dog": per_class}


def test_sample_source_is_byte_identical_for_the_same_seed(tmp_path, tiny_params):
    first, second = Paths(tmp_path / "a"), Paths(tmp_path / "b")
    data = tiny_params.data["catsdogs"]

    download("catsdogs", data, tiny_params.seed, first)
    download("catsdogs", data, tiny_params.seed, second)

    assert first.raw_archive("catsdogs").read_bytes() == second.raw_archive("catsdogs").read_bytes()


def test_sample_source_differs_for_another_seed(tmp_path, tiny_params):
    first, second = Paths(tmp_path / "a"), Paths(tmp_path / "b")
    data = tiny_params.data["catsdogs"]

    download("catsdogs", data, 1, first)
    download("catsdogs", data, 2, second)

    assert first.raw_archive("catsdogs").read_bytes() != second.raw_archive("catsdogs").read_bytes()


# Files a user's copy may hold that are not images of the dataset: ignored, never fatal.
STRAY_FILES = {
    "Thumbs.db": b"thumbs",
    ".DS_Store": b"ds",
    "train/bird.1.jpg": b"another class",
    "train/cat.jpg": b"no class and number in its name",
    "sampleSubmission.csv": b"id,label\n",
    "__MACOSX/train/cat.99.jpg": b"apple double",
    "__MACOSX/train/._cat.0.jpg": b"apple double",
}


def local_train_zip(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "train.zip", train_zip(images))


def local_competition_zip(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "dogs-vs-cats.zip", zip_bytes(competition_members(images)))


def local_extracted_folder(root: Path, images: dict[str, bytes]) -> Path:
    """The competition zip extracted, train.zip and test1.zip too: train/, test1/, sampleSubmission.csv."""
    folder = root / "extracted"
    for name, data in images.items():
        write(folder / "train" / name, data)
    write(folder / "test1" / "1.jpg", next(iter(images.values())))
    for name, data in STRAY_FILES.items():
        write(folder / name.replace("__MACOSX/", "__MACOSX/x/"), data)
    return folder


def local_zip_with_stray_files(root: Path, images: dict[str, bytes]) -> Path:
    members = {f"train/{name}": data for name, data in images.items()} | STRAY_FILES
    return write(root / "train.zip", zip_bytes(members))


def local_folder_with_train_zip(root: Path, images: dict[str, bytes]) -> Path:
    folder = root / "competition"
    for name, data in competition_members(images).items():
        write(folder / name, data)
    return folder


@pytest.mark.parametrize(
    "make_source",
    [
        local_train_zip,
        local_competition_zip,
        local_extracted_folder,
        local_zip_with_stray_files,
        local_folder_with_train_zip,
    ],
    ids=["train-zip", "competition-zip", "folder-with-stray-files", "zip-with-stray-files", "folder-with-train-zip"],
)
def test_local_source_gives_the_same_images(tmp_path, paths, images, expected, make_source):
    source = make_source(tmp_path / "user", images)

    count = download("catsdogs", local(source), 0, paths).samples

    assert listed(paths) == expected
    assert count == len(expected)
    members = {name.rsplit("/", 1)[-1]: data for name, data in archive_members(paths.raw_archive("catsdogs")).items()}
    assert members == images


def test_local_source_replaces_a_previous_archive(tmp_path, paths, images, expected):
    download("catsdogs", CatsDogsData(source="sample", sample_per_class=5), 0, paths)

    download("catsdogs", local(local_train_zip(tmp_path / "user", images)), 0, paths)

    assert listed(paths) == expected


def nonexistent(root: Path, images: dict[str, bytes]) -> Path:
    return root / "missing.zip"


def folder_without_images(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "notes" / "readme.txt", b"hello").parent


def zip_without_images(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "other.zip", zip_bytes({"a/readme.txt": b"x"}))


def competition_zip_with_bad_train_zip(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "dogs-vs-cats.zip", zip_bytes({"train.zip": b"not a zip"}))


def competition_zip_with_empty_train_zip(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "dogs-vs-cats.zip", zip_bytes({"train.zip": zip_bytes({"a.txt": b"x"})}))


def folder_with_empty_train_zip(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "folder" / "train.zip", zip_bytes({"a.txt": b"x"})).parent


def corrupt_zip(root: Path, images: dict[str, bytes]) -> Path:
    data = train_zip(images)
    start = data.find(b"PK\x01\x02")
    return write(root / "train.zip", data[:start] + b"\x00" * 46 + data[start + 46 :])


def truncated_zip(root: Path, images: dict[str, bytes]) -> Path:
    data = train_zip(images)
    return write(root / "train.zip", data[: len(data) // 2])


def plain_file(root: Path, images: dict[str, bytes]) -> Path:
    return write(root / "images.tar", b"\x00" * 1024)


BAD_SOURCES = [
    (nonexistent, "does not exist"),
    (folder_without_images, "holds no images"),
    (zip_without_images, "holds no images"),
    (competition_zip_with_bad_train_zip, "is not a zip file"),
    (competition_zip_with_empty_train_zip, "holds no images"),
    (folder_with_empty_train_zip, "holds no images"),
    (corrupt_zip, "is a corrupt archive"),
    (truncated_zip, "is a corrupt archive"),
    (plain_file, "holds no images"),
]


@pytest.mark.parametrize(("make_source", "message"), BAD_SOURCES, ids=[make.__name__ for make, _ in BAD_SOURCES])
def test_bad_local_source_is_an_error_and_writes_nothing(tmp_path, paths, images, make_source, message):
    source = make_source(tmp_path / "user", images)

    with pytest.raises(PipelineError, match=PATH_KEY) as error:
        download("catsdogs", local(source), 0, paths)

    assert message in str(error.value)
    assert str(source) in str(error.value)
    assert_nothing_written(paths)


UNSAFE_ENTRIES = ["../cat.2.jpg", "/tmp/cat.2.jpg", "..\\cat.2.jpg", "C:/cat.2.jpg"]


@pytest.mark.parametrize("entry", UNSAFE_ENTRIES)
@pytest.mark.parametrize("nested", [False, True], ids=["train-zip", "competition-zip"])
def test_zip_entry_pointing_outside_is_refused_and_nothing_is_written(tmp_path, paths, images, entry, nested):
    members = {"train/cat.1.jpg": images["cat.1.jpg"], entry: images["cat.2.jpg"]}
    source = write(tmp_path / "user" / "user.zip", zip_bytes({"train.zip": zip_bytes(members)} if nested else members))

    message = refusal_writing_nothing_outside(
        tmp_path, paths.root / "data", lambda: download("catsdogs", local(source), 0, paths)
    )

    assert re.match(PATH_KEY, message) and f"{source} holds the entry {entry!r}, which points outside" in message
    assert_nothing_written(paths)


def test_bad_local_source_keeps_a_previous_archive(tmp_path, paths):
    download("catsdogs", CatsDogsData(source="sample", sample_per_class=2), 0, paths)
    before = paths.raw_archive("catsdogs").read_bytes()
    source = write(tmp_path / "user" / "other.zip", zip_bytes({"readme.txt": b"x"}))

    with pytest.raises(PipelineError, match=PATH_KEY):
        download("catsdogs", local(source), 0, paths)

    assert paths.raw_archive("catsdogs").read_bytes() == before


# A class's every image unusable, by layout: the files, how the tree is written, where the error says the class is
# (given the source's path) and what it says to remove.
GARBAGE = {"0.jpg": b"", "1.jpg": b"not an image", "2.png": b"\x89PNG\r\n\x1a\n cut short"}


def garbage(prefix: str) -> dict[str, bytes]:
    return {f"{prefix}{name}": data for name, data in GARBAGE.items()}


LABELS = b"path,label\nimg/a/0.jpg,tabby\nimg/a/1.jpg,tabby\n" + b"".join(
    f"img/b/{name},siamese\n".encode() for name in GARBAGE
)
UNUSABLE_CLASSES = {
    "class-folders": (
        class_images({"cat": 3, "dog": 2}) | garbage("cow/"), "folder",
        lambda source: f"{source}/cow: no usable image of class 'cow'", "remove the folder",
    ),
    "class-folders-zip": (
        class_images({"cat": 3, "dog": 2}, "PetImages/") | garbage("PetImages/cow/"), "zip",
        lambda source: f"PetImages/cow inside {source}: no usable image of class 'cow'", "remove the folder",
    ),
    "split-folders": (
        class_images({"cat": 3, "dog": 2}, "train/") | class_images({"cat": 1}, "test/", 50) | garbage("test/dog/"),
        "tar.gz", lambda source: f"test/dog inside {source}: no usable image of class 'dog'", "remove the folder",
    ),
    "names": (
        named_images({"cat": 3}, "train/") | garbage("train/dog."), "folder",
        lambda source: f"{source}/train: no usable image of class 'dog'", "remove the class's files",
    ),
    "csv": (
        class_images({"a": 2}, "img/") | garbage("img/b/") | {"labels.csv": LABELS}, "zip",
        lambda source: f"labels.csv inside {source}: no usable image of class 'siamese'", "remove the class's rows",
    ),
}


@pytest.mark.parametrize(("files", "kind", "where", "removal"), UNUSABLE_CLASSES.values(), ids=UNUSABLE_CLASSES.keys())
def test_a_class_of_only_unusable_images_is_refused_naming_the_class_and_its_folder(
    tmp_path, paths, files, kind, where, removal
):
    source = write_tree(tmp_path / "user", files, kind)

    message = refusal_writing_nothing_outside(
        tmp_path, paths.root / "data", lambda: download("pets", DataSource(path=str(source)), 0, paths)
    )

    reasons = "3 files, all skipped: 2 not a decodable image, 1 empty file"
    assert message == f"data.pets: {where(source)} ({reasons}); replace them or {removal}"
    assert not paths.raw_dir("pets").exists()


def test_unusable_images_are_kept_with_their_reason_counted_and_named_in_the_downloads_line(
    tmp_path, paths, monkeypatch
):
    files = class_images({"cat": 3, "dog": 2}) | {"cat/empty.jpg": b"", "dog/text.jpg": b"hello"}
    source = write_tree(tmp_path / "user", files, "folder")
    params = parse_params(tiny_raw(**{"data.pets": {"source": "local", "path": str(source)}}))
    monkeypatch.chdir(paths.root)

    line = download_named("pets", params)

    skips = read_samples(paths, "pets").set_index("path")["skip"]
    assert skips["cat/empty.jpg"] == "empty file" and skips["dog/text.jpg"] == "not a decodable image"
    assert (skips.drop(["cat/empty.jpg", "dog/text.jpg"]) == "").all()
    assert read_index(paths, "pets").unusable == {"empty file": 1, "not a decodable image": 1}
    assert line.endswith("; unusable, which the split leaves out: 1 empty file, 1 not a decodable image")


@pytest.fixture
def no_kaggle_env(monkeypatch, tmp_path):
    """No Kaggle credentials anywhere kagglehub looks, whatever the machine running the tests has."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "kaggle-config"
    config.mkdir()
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(kagglehub.config, "_kaggle_credentials", None)
    monkeypatch.setattr(kagglehub, "competition_download", _must_not_download)
    return config


def _must_not_download(*args, **kwargs):
    raise AssertionError("kagglehub.competition_download must not be called")


@pytest.fixture
def kaggle_credentials(monkeypatch):
    monkeypatch.setattr(kagglehub.config, "get_kaggle_credentials", lambda: object())


def fake_competition_download(monkeypatch, result):
    calls = []

    def competition_download(handle, *args, **kwargs):
        calls.append(handle)
        if isinstance(result, BaseException):
            raise result
        return str(result)

    monkeypatch.setattr(kagglehub, "competition_download", competition_download)
    return calls


def http_error(status: int) -> KaggleApiHTTPError:
    response = requests.Response()
    response.status_code = status
    return KaggleApiHTTPError(f"{status} Client Error", response=response)


def test_kaggle_source_ingests_the_competition_folder(
    tmp_path, paths, images, expected, monkeypatch, kaggle_credentials
):
    cache = local_folder_with_train_zip(tmp_path / "kagglehub-cache", images)
    calls = fake_competition_download(monkeypatch, cache)

    count = download("catsdogs", CatsDogsData(source="kaggle"), 0, paths).samples

    assert calls == ["dogs-vs-cats"]
    assert count == len(expected)
    assert listed(paths) == expected


def test_kaggle_without_credentials_explains_how_to_add_them(paths, no_kaggle_env):
    with pytest.raises(PipelineError, match="credentials") as error:
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)

    assert "kaggle.json" in str(error.value)
    assert "KAGGLE_USERNAME" in str(error.value)
    assert_nothing_written(paths)


def test_kaggle_with_unreadable_credentials_file_is_an_error(paths, no_kaggle_env):
    (no_kaggle_env / "kaggle.json").write_text("{not json")

    with pytest.raises(PipelineError, match="credentials missing or unreadable.*kaggle.json"):
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)
    assert_nothing_written(paths)


def test_kaggle_rejected_credentials_is_an_error(paths, monkeypatch, kaggle_credentials):
    fake_competition_download(monkeypatch, http_error(401))

    with pytest.raises(PipelineError, match=r"rejected the credentials \(401\).*kaggle\.json"):
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)
    assert_nothing_written(paths)


def test_kaggle_forbidden_asks_to_accept_the_rules(paths, monkeypatch, kaggle_credentials):
    fake_competition_download(monkeypatch, http_error(403))

    with pytest.raises(PipelineError, match=r"\(403\).*accept the competition rules at " + re.escape(RULES_URL)):
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)
    assert_nothing_written(paths)


def test_kaggle_other_http_error_names_the_competition(paths, monkeypatch, kaggle_credentials):
    fake_competition_download(monkeypatch, http_error(500))

    with pytest.raises(PipelineError, match=r"download of 'dogs-vs-cats' failed.*500"):
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)


@pytest.mark.parametrize(
    "failure", [requests.ConnectionError("Name or service not known"), requests.ReadTimeout("read timed out")]
)
def test_kaggle_unreachable_suggests_a_local_copy(paths, monkeypatch, kaggle_credentials, failure):
    fake_competition_download(monkeypatch, failure)

    with pytest.raises(PipelineError, match=r"cannot reach Kaggle.*network.*source: local") as error:
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)

    assert type(failure).__name__ in str(error.value)
    assert_nothing_written(paths)


def test_kaggle_folder_without_images_names_the_source_key(tmp_path, paths, monkeypatch, kaggle_credentials):
    cache = tmp_path / "kagglehub-cache"
    write(cache / "sampleSubmission.csv", b"id,label\n")
    fake_competition_download(monkeypatch, cache)

    with pytest.raises(PipelineError, match=r"data\.catsdogs: .*kagglehub-cache holds no images"):
        download("catsdogs", CatsDogsData(source="kaggle"), 0, paths)
    assert_nothing_written(paths)

import hashlib
import io
import pickle
import re
import struct
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config.datasets import Cifar10Data
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.sources import cifar
from pipeline.data.specs import CIFAR10, CIFAR10_CLASSES
from pipeline.stages.download import download
from tests.conftest import refusal_writing_nothing_outside

PATH_KEY = r"data\.cifar10\.path"
SOURCE_KEY = r"data\.cifar10\.source"
BATCH_SIZES = dict(zip(cifar.MEMBERS, (3, 2, 3, 2, 3, 4)))


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Nothing here may reach the network or the user's cache."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a URL")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv(cifar.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def batches() -> dict[str, dict[bytes, object]]:
    """Tiny official batches of random pixels and labels, with the keys the real files hold."""
    rng = np.random.default_rng(5)
    found: dict[str, dict[bytes, object]] = {}
    for name, size in BATCH_SIZES.items():
        labels = [int(label) for label in rng.integers(0, len(CIFAR10_CLASSES), size)]
        found[name] = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
            b"filenames": [f"img_{n}.png".encode() for n in range(size)],
        }
    found["batches.meta"] = {b"label_names": [name.encode() for name in CIFAR10_CLASSES], b"num_vis": 3072}
    return found


@pytest.fixture(scope="module")
def expected(batches) -> dict[str, np.ndarray]:
    """The RGB image each member of the raw archive must decode to, by member name."""
    images = {}
    for part, names in cifar.PARTS.items():
        rows = np.concatenate([batches[name][b"data"] for name in names])
        labels = [label for name in names for label in batches[name][b"labels"]]
        for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
            images[f"{part}/{CIFAR10_CLASSES[label]}/{index:05d}.png"] = row.reshape(3, 32, 32).transpose(1, 2, 0)
    return images


def py2_pickle(value: object) -> bytes:
    """`value` pickled as Python 2's cPickle wrote the official batches: protocol 2, str, numpy.core arrays."""
    if isinstance(value, dict):
        return b"}(" + b"".join(py2_pickle(k) + py2_pickle(v) for k, v in value.items()) + b"u"
    if isinstance(value, list):
        return b"](" + b"".join(py2_pickle(item) for item in value) + b"e"
    if isinstance(value, bytes):
        return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<i", len(value)) + value
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2
    dtype = b"cnumpy\ndtype\n" + py2_pickle(b"u1") + py2_pickle(0) + py2_pickle(1) + b"\x87R(" + py2_pickle(3)
    dtype += py2_pickle(b"|") + b"NNN" + py2_pickle(-1) + py2_pickle(-1) + py2_pickle(0) + b"tb"
    shape = b"".join(py2_pickle(side) for side in value.shape) + b"\x86"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + py2_pickle(0) + b"\x85" + py2_pickle(b"b")
    return array + b"\x87R(" + py2_pickle(1) + shape + dtype + b"\x89" + py2_pickle(value.tobytes()) + b"tb"


def py2_file(value: object) -> bytes:
    return b"\x80\x02" + py2_pickle(value) + b"."


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def batches_folder(root: Path, batches: dict, skip: tuple[str, ...] = (), **replace: bytes) -> Path:
    folder = root / cifar.BASE_FOLDER
    for name, batch in batches.items():
        if name not in skip:
            write(folder / name, replace.get(name, py2_file(batch)))
    return folder


def tar_gz(root: Path, folder: Path, *extra: tarfile.TarInfo) -> Path:
    """`folder` as the official archive's batches folder, then the `extra` entries (bodies of their size)."""
    archive = root / cifar.FILENAME
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=cifar.BASE_FOLDER)
        for entry in extra:
            tar.addfile(entry, io.BytesIO(b"x" * entry.size))
    return archive


def local(path: Path) -> Cifar10Data:
    return Cifar10Data(source="local", path=str(path))


def decoded(paths: Paths) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        return {
            name: cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
            for name in archive.namelist()
        }


def assert_nothing_written(paths: Paths) -> None:
    raw = paths.raw_dir("cifar10")
    assert not raw.exists() or list(raw.iterdir()) == []


def official_tar(root: Path, batches: dict) -> Path:
    return tar_gz(root, batches_folder(root / "build", batches))


def extracted_folder(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches)


def folder_holding_extracted(root: Path, batches: dict) -> Path:
    return batches_folder(root / "downloads", batches).parent


@pytest.mark.parametrize("make_source", [official_tar, extracted_folder, folder_holding_extracted])
def test_pickle_batches_round_trip_exactly(tmp_path, paths, batches, expected, make_source):
    count = download("cifar10", local(make_source(tmp_path / "user", batches)), 0, paths)

    images = decoded(paths)
    assert count == len(expected) == sum(BATCH_SIZES.values())
    assert images.keys() == expected.keys()
    assert all(np.array_equal(images[name], expected[name]) for name in expected)
    assert all(CIFAR10.image_name.fullmatch(name) for name in images)


def class_tree(root: Path) -> dict[str, bytes]:
    """A class-folder tree of PNGs and JPEGs of odd names and sizes, with stray files; returns the members expected,
    in their order: train then test, each sorted by name."""
    png = cv2.imencode(".png", np.full((24, 40, 3), 90, np.uint8))[1].tobytes()
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    files = {
        "train/cat/IMG 0001.PNG": ("train/cat/IMG 0001.png", png),
        "train/cat/kitten.v2.JPEG": ("train/cat/kitten.v2.jpeg", jpeg),
        "train/airplane/0007.png": ("train/airplane/0007.png", png),
        "train/airplane/Überflieger.jpg": ("train/airplane/Überflieger.jpg", jpeg),
        "test/ship/boat.jpg": ("test/ship/boat.jpg", jpeg),
        "test/truck/00002.png": ("test/truck/00002.png", png),
    }
    for name, (_, data) in files.items():
        write(root / name, data)
    for stray in ("train/cat/.DS_Store", "train/cat/._kitten.png", "train/cat/notes.txt", "train/labels.csv",
                  "train/.ipynb_checkpoints/cat.png", "test/__MACOSX/ship/._boat.jpg", "test/truck/sub/00003.png"):
        write(root / stray, b"not an image")
    return dict(sorted(files.values(), key=lambda member: (not member[0].startswith("train/"), member[0])))


def test_class_folder_tree_keeps_the_original_bytes(tmp_path, paths):
    members = class_tree(tmp_path / "user")

    count = download("cifar10", local(tmp_path / "user"), 0, paths)

    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        assert archive.namelist() == list(members)
        assert {name: archive.read(name) for name in archive.namelist()} == members
    assert count == len(members)
    assert all(CIFAR10.class_of(name) for name in members)


def test_class_folder_tree_may_hold_some_classes_only(tmp_path, paths):
    write(tmp_path / "user" / "train" / "dog" / "1.png", b"png")
    write(tmp_path / "user" / "test" / "dog" / "2.png", b"png")

    assert download("cifar10", local(tmp_path / "user"), 0, paths) == 2


def test_class_folder_names_match_the_classes_in_any_case(tmp_path, paths):
    write(tmp_path / "user" / "train" / "Airplane" / "1.PNG", b"png")
    write(tmp_path / "user" / "test" / "TRUCK" / "2.png", b"png")

    download("cifar10", local(tmp_path / "user"), 0, paths)

    with zipfile.ZipFile(paths.raw_archive("cifar10")) as archive:
        assert archive.namelist() == ["train/airplane/1.png", "test/truck/2.png"]


def missing(root: Path, batches: dict) -> Path:
    return root / "cifar-10-python.tar.gz"


def zip_file(root: Path, batches: dict) -> Path:
    return write(root / "cifar10.zip", b"PK\x05\x06" + b"\x00" * 18)


def text_file(root: Path, batches: dict) -> Path:
    return write(root / "cifar10.tar.gz", b"just some text, not an archive")


def folder_of_other_things(root: Path, batches: dict) -> Path:
    return write(root / "stuff" / "readme.txt", b"hello").parent


def unknown_class_folder(root: Path, batches: dict) -> Path:
    write(root / "tree" / "train" / "cats" / "1.png", b"png")
    write(root / "tree" / "test" / "cat" / "1.png", b"png")
    return root / "tree"


def tree_without_test(root: Path, batches: dict) -> Path:
    return write(root / "tree" / "train" / "cat" / "1.png", b"png").parents[2]


def tree_without_train(root: Path, batches: dict) -> Path:
    return write(root / "tree" / "test" / "cat" / "1.png", b"png").parents[2]


def tree_without_images(root: Path, batches: dict) -> Path:
    write(root / "tree" / "train" / "cat" / "1.png", b"png")
    return write(root / "tree" / "test" / "cat" / "notes.txt", b"x").parents[2]


def truncated_tar(root: Path, batches: dict) -> Path:
    archive = official_tar(root, batches)
    return write(archive, archive.read_bytes()[: archive.stat().st_size // 2])


def corrupt_tar(root: Path, batches: dict) -> Path:
    data = bytearray(official_tar(root, batches).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return write(root / cifar.FILENAME, bytes(data))


def corrupt_pickle(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, data_batch_3=b"\x80\x02}(garbage")


def folder_missing_batches(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, skip=("data_batch_5", "batches.meta"))


def tar_missing_test_batch(root: Path, batches: dict) -> Path:
    return tar_gz(root, batches_folder(root / "build", batches, skip=("test_batch",)))


def not_cifar10_labels(root: Path, batches: dict) -> Path:
    return batches_folder(root, batches, **{"batches.meta": py2_file({b"label_names": [b"apple"]})})


def labels_out_of_range(root: Path, batches: dict) -> Path:
    bad = batches["data_batch_1"] | {b"labels": [0, 1, 10]}
    return batches_folder(root, batches, data_batch_1=py2_file(bad))


def rows_of_wrong_length(root: Path, batches: dict) -> Path:
    bad = batches["test_batch"] | {b"data": np.zeros((4, 1024), np.uint8)}
    return batches_folder(root, batches, test_batch=py2_file(bad))


BAD_SOURCES = [
    (missing, "does not exist", None),
    (zip_file, "unknown format", None),
    (text_file, "unknown format", None),
    (folder_of_other_things, "unknown format", None),
    (unknown_class_folder, "not CIFAR-10 classes (cats)", ", ".join(CIFAR10_CLASSES)),
    (tree_without_test, "has no test/ folder", "train/<class>/ and test/<class>/"),
    (tree_without_train, "has no train/ folder", None),
    (tree_without_images, "holds no PNG or JPEG images", None),
    (truncated_tar, "corrupt archive", "download it again"),
    (corrupt_tar, "corrupt archive", "download it again"),
    (corrupt_pickle, "data_batch_3 is not a readable CIFAR-10 batch", "download it again"),
    (folder_missing_batches, "lacks data_batch_5, batches.meta", "download cifar-10-python.tar.gz again"),
    (tar_missing_test_batch, "lacks test_batch", None),
    (not_cifar10_labels, "does not name the CIFAR-10 classes", None),
    (labels_out_of_range, "data_batch_1 in", "label 0-9"),
    (rows_of_wrong_length, "test_batch in", "3072 values a row"),
]


@pytest.mark.parametrize(("make_source", "message", "hint"), BAD_SOURCES, ids=[bad[0].__name__ for bad in BAD_SOURCES])
def test_bad_local_source_is_an_error_and_writes_nothing(tmp_path, paths, batches, make_source, message, hint):
    source = make_source(tmp_path / "user", batches)

    with pytest.raises(PipelineError, match=PATH_KEY) as error:
        download("cifar10", local(source), 0, paths)

    assert message in str(error.value)
    assert str(source) in str(error.value)
    assert hint is None or hint in str(error.value)
    assert_nothing_written(paths)


def entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    """A tar entry: a one-byte file, or a link to `target`."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, 1 if kind == tarfile.REGTYPE else 0
    return info


UNSAFE_TAR_ENTRIES = {  # the entry, and the path the error names
    "parent": (entry("../outside"), "../outside"),
    "absolute": (entry("/tmp/outside"), "/tmp/outside"),
    "symlink-out": (entry(f"{cifar.BASE_FOLDER}/link", tarfile.SYMTYPE, "../../outside"), "../outside"),
    "hardlink-absolute": (entry(f"{cifar.BASE_FOLDER}/hard", tarfile.LNKTYPE, "/etc/passwd"), "/etc/passwd"),
}


@pytest.mark.parametrize(("unsafe", "shown"), UNSAFE_TAR_ENTRIES.values(), ids=UNSAFE_TAR_ENTRIES)
def test_tar_entry_pointing_outside_is_refused_and_nothing_is_written(tmp_path, paths, batches, unsafe, shown):
    source = tar_gz(tmp_path / "user", batches_folder(tmp_path / "build", batches), unsafe)

    message = refusal_writing_nothing_outside(
        tmp_path, paths.root / "data", lambda: download("cifar10", local(source), 0, paths)
    )

    assert re.match(PATH_KEY, message) and f"{source} holds the entry {shown!r}, which points outside" in message
    assert_nothing_written(paths)


class WritesAFile:
    """Unpickled by plain `pickle`, this creates the file at `path`: a stand-in for any code a crafted batch runs."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return exec, (f"open({str(self.path)!r}, 'w').close()",)


@pytest.mark.parametrize("as_tar", [False, True], ids=["folder", "tar"])
def test_crafted_pickle_batch_is_refused_without_running_its_code(tmp_path, paths, batches, as_tar):
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesAFile(proof)))  # the payload is live: plain pickle runs it
    crafted = pickle.dumps({b"data": WritesAFile(marker), b"labels": [0]})
    folder = batches_folder(tmp_path / ("build" if as_tar else "user"), batches, data_batch_2=crafted)
    source = tar_gz(tmp_path / "user", folder) if as_tar else folder

    with pytest.raises(PipelineError, match=PATH_KEY) as error:
        download("cifar10", local(source), 0, paths)

    message = str(error.value)
    assert str(source) in message and "data_batch_2" in message and "not a readable CIFAR-10 batch" in message
    assert "unexpected builtins.exec" in message
    assert proof.exists() and not marker.exists()
    assert_nothing_written(paths)


def test_constants_are_torchvisions():
    from torchvision.datasets import CIFAR10 as TorchvisionCifar10

    assert (cifar.URL, cifar.FILENAME, cifar.TGZ_MD5) == (
        TorchvisionCifar10.url,
        TorchvisionCifar10.filename,
        TorchvisionCifar10.tgz_md5,
    )


def test_cache_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(cifar.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert cifar.cache_dir() == tmp_path / ".cache" / "image-pipeline" / "cifar10"


class FakeServer:
    """Stands in for torchvision's HTTP download: serves its bodies in turn (the last one again and again), each
    fixed bytes or a failure, and counts the requests."""

    def __init__(self, *bodies: bytes | BaseException):
        self.bodies, self.requests = bodies, []

    def retrieve(self, url: str, filename: str, chunk_size: int = 0) -> None:
        body = self.bodies[min(len(self.requests), len(self.bodies) - 1)]
        self.requests.append(url)
        if isinstance(body, BaseException):
            raise body
        Path(filename).write_bytes(body)


@pytest.fixture
def serve(monkeypatch):
    """Replace torchvision's network calls (redirect lookup, retrieval) with a FakeServer."""
    import torchvision.datasets.utils as utils

    def start(*bodies: bytes | BaseException) -> FakeServer:
        server = FakeServer(*bodies)
        monkeypatch.setattr(utils, "_is_remote_location_available", lambda: False)
        monkeypatch.setattr(utils, "_get_redirect_url", lambda url, max_hops=3: url)
        monkeypatch.setattr(utils, "_urlretrieve", server.retrieve)
        return server

    return start


@pytest.fixture
def official_bytes(tmp_path, batches) -> bytes:
    return official_tar(tmp_path / "served", batches).read_bytes()


def test_torchvision_source_downloads_once_and_reuses_the_cache(paths, monkeypatch, serve, official_bytes, expected):
    monkeypatch.setattr(cifar, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    server = serve(official_bytes)

    first = download("cifar10", Cifar10Data(source="torchvision"), 0, paths)
    again = download("cifar10", Cifar10Data(source="torchvision"), 0, paths)

    assert server.requests == [cifar.URL]
    assert first == again == len(expected)
    assert (cifar.cache_dir() / cifar.FILENAME).read_bytes() == official_bytes
    assert all(np.array_equal(image, expected[name]) for name, image in decoded(paths).items())


def test_torchvision_checksum_mismatch_downloads_once_more_then_fails_and_removes_it(paths, serve, official_bytes):
    server = serve(official_bytes)
    archive = cifar.cache_dir() / cifar.FILENAME

    with pytest.raises(PipelineError, match=SOURCE_KEY) as error:
        download("cifar10", Cifar10Data(source="torchvision"), 0, paths)

    assert server.requests == [cifar.URL, cifar.URL]
    assert f"downloaded from {cifar.URL} does not match the official md5 {cifar.TGZ_MD5} in 2 attempts" in str(
        error.value
    )
    assert not archive.exists()
    assert list(cifar.cache_dir().iterdir()) == []
    assert_nothing_written(paths)


def test_torchvision_checksum_mismatch_then_a_good_download_succeeds(
    paths, monkeypatch, serve, official_bytes, expected
):
    monkeypatch.setattr(cifar, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    server = serve(official_bytes[:-100], official_bytes)

    assert download("cifar10", Cifar10Data(source="torchvision"), 0, paths) == len(expected)

    assert server.requests == [cifar.URL, cifar.URL]
    assert list(cifar.cache_dir().iterdir()) == [cifar.cache_dir() / cifar.FILENAME]


def test_a_corrupt_archive_in_the_cache_is_replaced_by_a_fresh_download(
    paths, monkeypatch, serve, official_bytes, expected
):
    monkeypatch.setattr(cifar, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    archive = cifar.cache_dir() / cifar.FILENAME
    archive.parent.mkdir(parents=True)
    archive.write_bytes(official_bytes[: len(official_bytes) // 2])
    serve(official_bytes)
    assert download("cifar10", Cifar10Data(source="torchvision"), 0, paths) == len(expected)
    assert archive.read_bytes() == official_bytes
    assert list(cifar.cache_dir().iterdir()) == [archive]


def test_torchvision_network_error_suggests_a_local_copy(paths, serve):
    serve(urllib.error.URLError("Name or service not known"))

    with pytest.raises(PipelineError, match=SOURCE_KEY) as error:
        download("cifar10", Cifar10Data(source="torchvision"), 0, paths)

    message = str(error.value)
    assert f"could not download {cifar.URL}" in message
    assert re.search(r"source: local with data\.cifar10\.path", message)
    assert list(cifar.cache_dir().iterdir()) == []
    assert_nothing_written(paths)


def test_sample_keeps_a_previous_archive_when_a_later_source_fails(tmp_path, paths):
    download("cifar10", Cifar10Data(sample_per_class=1, sample_test_per_class=1), 0, paths)
    before = paths.raw_archive("cifar10").read_bytes()

    with pytest.raises(PipelineError):
        download("cifar10", local(tmp_path / "missing"), 0, paths)

    assert paths.raw_archive("cifar10").read_bytes() == before

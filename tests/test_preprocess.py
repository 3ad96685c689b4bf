import io
import json
import resource
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config.datasets import PreprocessParams
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import write_zip
from pipeline.data.images import TOO_LARGE, decode_image
from pipeline.data.manifests import COLUMNS, read_manifest
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES
from pipeline.data.store import ChannelStats, load_meta, load_split, split_files
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess
from tests.helpers.datasets import prepare, write_raw_index
from tests.helpers.params import tiny_full


def _files(paths: Paths) -> dict[Path, bytes]:
    """Every file a run wrote, by its path relative to the run's root."""
    return {path.relative_to(paths.root): path.read_bytes() for path in paths.root.rglob("*") if path.is_file()}


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("color", "channels"), [("gray", 1), ("rgb", 3)])
def test_arrays_are_uint8_size_by_size_by_channels(prepared, color, channels):
    preprocess("catsdogs", PreprocessParams(image_size=24, color=color), prepared)
    for name, count in {"train": 12, "val": 6, "test": 6}.items():
        arrays = load_split(prepared, "catsdogs", name)
        assert arrays.inputs.shape == (count, 24, 24, channels)
        assert arrays.inputs.dtype == np.uint8
        assert arrays.labels.dtype == np.int64


def test_labels_follow_the_manifest_order(prepared):
    for name in SPLITS:
        labels = load_split(prepared, "catsdogs", name).labels
        assert labels.tolist() == read_manifest(prepared, "catsdogs", name)["label"].tolist()


def test_meta_json_records_classes_size_color_and_training_statistics(prepared):
    meta = load_meta(prepared, "catsdogs")
    images = load_split(prepared, "catsdogs", "train").inputs / 255
    assert meta.model_dump(include={"classes", "size", "color", "resize", "normalize"}) == {
        "classes": ["cat", "dog"],
        "size": 32,
        "color": "gray",
        "resize": "squash",
        "normalize": False,
    }
    assert meta.mean == pytest.approx([images.mean()], abs=1e-6)
    assert meta.std == pytest.approx([images.std()], abs=1e-6)


def test_channel_stats_are_per_channel_on_the_unit_scale():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 1] = 255
    images[0, ..., 2] = 255
    stats = ChannelStats(3)
    stats.add(images)
    assert stats.result() == {"mean": [0.0, 1.0, 0.5], "std": [1e-6, 1e-6, 0.5]}


def test_summary_counts_kept_images_and_nothing_skipped(prepared):
    summary = json.loads(prepared.preprocess_metrics("catsdogs").read_text())
    assert {name: summary[name] for name in SPLITS} == {
        "train": {"kept": 12, "skipped": 0},
        "val": {"kept": 6, "skipped": 0},
        "test": {"kept": 6, "skipped": 0},
    }
    assert (prepared.processed_dir("catsdogs") / "skipped.csv").read_text() == "split,path,reason\n"


def test_unreadable_images_are_skipped_counted_and_listed(prepared, tiny_params):
    archive = prepared.raw_archive("catsdogs")
    garbage, empty, missing = read_manifest(prepared, "catsdogs", "train")["path"][:3]
    with zipfile.ZipFile(archive) as source:
        members = [(name, source.read(name)) for name in source.namelist() if name != missing]
    replaced = {garbage: b"this is not a jpeg", empty: b""}
    write_zip(archive, [(name, replaced.get(name, data)) for name, data in members])

    summary = preprocess("catsdogs", tiny_params.preprocess["catsdogs"], prepared)

    assert summary["train"] == {"kept": 9, "skipped": 3}
    assert summary["val"] == {"kept": 6, "skipped": 0}
    assert json.loads(prepared.preprocess_metrics("catsdogs").read_text()) == summary
    skipped = pd.read_csv(prepared.processed_dir("catsdogs") / "skipped.csv")
    assert skipped.to_dict("records") == [
        {"split": "train", "path": garbage, "reason": "not a decodable image"},
        {"split": "train", "path": empty, "reason": "empty file"},
        {"split": "train", "path": missing, "reason": "missing from the raw archive"},
    ]
    train = load_split(prepared, "catsdogs", "train")
    assert train.inputs.shape[0] == 9
    assert train.labels.tolist() == read_manifest(prepared, "catsdogs", "train")["label"][3:].tolist()


def test_a_train_split_left_without_any_image_of_a_class_is_refused_and_nothing_written(prepared, tiny_params):
    archive = prepared.raw_archive("catsdogs")
    train = read_manifest(prepared, "catsdogs", "train")
    cats = train.loc[train["class"] == "cat", "path"].tolist()
    with zipfile.ZipFile(archive) as source:
        members = [(name, b"" if name in cats else source.read(name)) for name in source.namelist()]
    write_zip(archive, members)
    before = _files(prepared)

    with pytest.raises(PipelineError) as error:
        preprocess("catsdogs", tiny_params.preprocess["catsdogs"], prepared)

    message = str(error.value)
    assert message.startswith(
        "preprocess.catsdogs: the train split has no image of class 'cat' left: 6 files, all skipped: 6 empty file ("
    )
    assert all(path in message for path in cats) and "the rows skipped.csv would hold" in message
    assert _files(prepared) == before  # the previous arrays, skipped.csv and metrics stay


@pytest.mark.parametrize("dataset", ["catsdogs", "cifar10"])
def test_two_runs_with_the_same_seed_give_byte_identical_outputs(tmp_path, dataset):
    """Raw archive, manifests, arrays, meta, skipped list and metrics; a different seed's split differs (test_split)."""
    params = parse_params(tiny_full())
    first, second = (_files(prepare(Paths(tmp_path / run), params, dataset)) for run in ("first", "second"))
    assert first == second
    relative = Paths()
    assert {relative.manifest(dataset, name) for name in SPLITS} | set(split_files(relative, dataset, SPLITS)) <= set(
        first
    )


def test_decode_converts_a_color_jpeg_to_gray():
    blue = np.zeros((40, 60, 3), np.uint8)
    blue[..., 0] = 255
    image = decode_image(_jpeg(blue), 16, "gray")
    assert image.shape == (16, 16, 1)
    assert image.dtype == np.uint8
    assert abs(int(image.mean()) - 29) <= 3


def test_decode_color_returns_rgb_channel_order():
    blue = np.zeros((40, 60, 3), np.uint8)
    blue[..., 0] = 255
    image = decode_image(_jpeg(blue), 16, "rgb")
    assert image.shape == (16, 16, 3)
    red, _, blue_channel = image.reshape(-1, 3).mean(axis=0)
    assert blue_channel > 240 and red < 15


def test_decode_converts_a_gray_jpeg_to_rgb():
    gray = np.tile(np.arange(0, 200, 5, dtype=np.uint8), (40, 1))
    image = decode_image(_jpeg(gray), 20, "rgb")
    assert image.shape == (20, 20, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert image.std() > 10


def test_decode_of_garbage_is_none():
    assert decode_image(b"\x00\x01not an image", 16, "gray") is None


def test_missing_manifest_is_an_error_naming_the_split_stage(paths, tiny_params):
    download("catsdogs", tiny_params.data["catsdogs"], tiny_params.seed, paths)
    with pytest.raises(PipelineError, match=r"manifest not found; run the split stage"):
        preprocess("catsdogs", tiny_params.preprocess["catsdogs"], paths)
    assert not paths.processed_dir("catsdogs").exists()


def test_load_split_before_preprocess_says_to_run_it(paths):
    with pytest.raises(PipelineError, match="run the preprocess stage"):
        load_split(paths, "catsdogs", "train")


# Image cases: one preprocess run over a train split holding one image of each kind (CIFAR-10 names, which may be
# PNG or JPEG), then one test per kind.


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photo() -> Image.Image:
    """A smooth 48x40 RGB picture, so that JPEG compresses it as it would a photo."""
    ramp = np.linspace(0, 255, 48 * 40 * 3).reshape(40, 48, 3)
    return Image.fromarray(ramp.astype(np.uint8))


def _truncated_jpeg() -> bytes:
    """Cut off half-way through its compressed data, as an interrupted download leaves it."""
    data = _saved(_photo(), "JPEG")
    scan = data.rfind(b"\xff\xda")
    return data[: (scan + len(data)) // 2]


def _png_16_bit() -> bytes:
    return cv2.imencode(".png", np.asarray(_photo()).astype(np.uint16) * 257)[1].tobytes()


def _exif_rotated_jpeg() -> bytes:
    """Stored lying on its side (rotated a quarter turn counter-clockwise), with EXIF orientation 6 to stand it
    upright: white top half, black bottom half once upright."""
    upright = np.zeros((40, 24), np.uint8)
    upright[:20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    return _saved(Image.fromarray(np.rot90(upright).copy()), "JPEG", exif=exif)


def _bomb(side: int = 30000) -> bytes:
    """A valid one-colour 1-bit PNG of side x side pixels: about 110 kB on disk, 900 MB to 2.7 GB decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows, compressor = b"\0" * (1 + side // 8) * 1000, zlib.compressobj(9)
    idat = b"".join(compressor.compress(rows) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


MISNAMED = "data named .jpg; convert it to the format its name says"
KEPT: dict[str, Callable[[], bytes]] = {
    "train/dog/gray.png": lambda: _saved(_photo().convert("L"), "PNG"),
    "train/dog/rotated.jpg": _exif_rotated_jpeg,
    "train/cat/photo.jpg": lambda: _saved(_photo(), "JPEG"),  # a class must keep an image (see the refusal's test)
}
SKIPPED: dict[str, tuple[Callable[[], bytes], str]] = {
    "train/cat/zero-byte.jpg": (lambda: b"", "empty file"),
    "train/cat/truncated.jpg": (_truncated_jpeg, "truncated JPEG (no end-of-image marker); download it again"),
    "train/cat/png.jpg": (lambda: _saved(_photo(), "PNG"), f"PNG {MISNAMED}"),
    "train/cat/gif.jpg": (lambda: _saved(_photo(), "GIF"), f"GIF {MISNAMED}"),
    "train/cat/cmyk.jpg": (lambda: _saved(_photo().convert("CMYK"), "JPEG"), "CMYK JPEG; convert it to RGB"),
    "train/cat/16-bit.png": (_png_16_bit, "16-bit PNG; convert it to 8 bits per channel"),
    "train/cat/rgba.png": (lambda: _saved(_photo().convert("RGBA"), "PNG"), "RGBA image with an alpha channel"),
    "train/cat/huge.png": (_bomb, TOO_LARGE),
}


@dataclass(frozen=True)
class Cases:
    """One preprocess run over every kind of image: its paths, the images' bytes, what reached OpenCV's decoder,
    and how much the process's peak memory grew (MB)."""

    paths: Paths
    members: dict[str, bytes]
    decoded: list[bytes]
    growth_mb: float

    def skipped(self) -> dict[str, str]:
        frame = pd.read_csv(self.paths.processed_dir("cifar10") / "skipped.csv")
        return dict(zip(frame["path"], frame["reason"], strict=True))


def _only_train(paths: Paths, dataset: str, names: list[str]) -> None:
    """Manifests listing `names` (`<part>/<class>/<file>`) as the train split, in this order; val and test empty."""
    rows = [(name, CIFAR10_CLASSES.index(name.split("/")[1]), name.split("/")[1]) for name in names]
    paths.manifest_dir(dataset).mkdir(parents=True)
    for split_name in SPLITS:
        frame = pd.DataFrame(rows if split_name == "train" else [], columns=COLUMNS)
        frame.to_csv(paths.manifest(dataset, split_name), index=False)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Cases:
    """Preprocess (RGB) a raw archive of every kind of image, kept ones first, with a spy on OpenCV's decoder."""
    paths = Paths(tmp_path_factory.mktemp("cases"))
    members = {name: make() for name, make in KEPT.items()} | {name: make() for name, (make, _) in SKIPPED.items()}
    write_zip(paths.raw_archive("cifar10"), members.items())
    write_raw_index(paths, "cifar10", CIFAR10_CLASSES)
    _only_train(paths, "cifar10", list(members))
    decoded: list[bytes] = []
    real = cv2.imdecode

    def spy(buffer: np.ndarray, flags: int) -> np.ndarray | None:
        decoded.append(buffer.tobytes())
        return real(buffer, flags)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cv2, "imdecode", spy)
        preprocess("cifar10", PreprocessParams(image_size=32, color="rgb"), paths)
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    return Cases(paths, members, decoded, growth_mb)


@pytest.mark.parametrize(
    ("member", "reason"),
    [(name, reason) for name, (_, reason) in SKIPPED.items()],
    ids=[name.rsplit("/", 1)[-1] for name in SKIPPED],
)
def test_unusable_image_is_skipped_with_its_reason(cases, member, reason):
    assert cases.skipped()[member].startswith(reason)


def test_skipped_images_are_counted_and_the_others_kept(cases):
    summary = json.loads(cases.paths.preprocess_metrics("cifar10").read_text())
    assert summary["train"] == {"kept": len(KEPT), "skipped": len(SKIPPED)}
    assert list(cases.skipped()) == list(SKIPPED)
    assert load_split(cases.paths, "cifar10", "train").labels.tolist() == [5, 5, 3]


def test_grayscale_image_is_converted_to_rgb_not_skipped(cases):
    gray = load_split(cases.paths, "cifar10", "train").inputs[0]
    assert gray.shape == (32, 32, 3)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert gray.std() > 10


def test_exif_rotated_jpeg_is_decoded_upright(cases):
    rotated = load_split(cases.paths, "cifar10", "train").inputs[1]
    assert rotated[:12].mean() > 200 and rotated[-12:].mean() < 50


def test_huge_image_is_refused_from_its_header_never_decoded(cases):
    bomb = cases.members["train/cat/huge.png"]
    assert len(bomb) < 200_000
    assert bomb not in cases.decoded
    assert len(cases.decoded) == len(KEPT)
    assert cases.growth_mb < 300

import json
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.download import download
from pipeline.errors import PipelineError
from pipeline.params import PreprocessParams
from pipeline.paths import SPLITS, Paths
from pipeline.preprocess import channel_stats, decode_image, load_meta, load_split, preprocess
from pipeline.rawdata import write_zip
from pipeline.split import read_manifest


def _arrays(paths: Paths) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(paths.processed_dir("catsdogs").glob("*.npy"))}


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("color", "channels"), [("gray", 1), ("rgb", 3)])
def test_arrays_are_uint8_size_by_size_by_channels(prepared, color, channels):
    preprocess("catsdogs", PreprocessParams(size=24, color=color), prepared)
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
    assert {key: meta[key] for key in ("classes", "size", "color", "normalize")} == {
        "classes": ["cat", "dog"],
        "size": 32,
        "color": "gray",
        "normalize": False,
    }
    assert meta["mean"] == pytest.approx([images.mean()], abs=1e-6)
    assert meta["std"] == pytest.approx([images.std()], abs=1e-6)


def test_channel_stats_are_per_channel_on_the_unit_scale():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 1] = 255
    images[0, ..., 2] = 255
    stats = channel_stats(images)
    assert stats == {"mean": [0.0, 1.0, 0.5], "std": [1e-6, 1e-6, 0.5]}


def test_summary_counts_kept_images_and_nothing_skipped(prepared):
    summary = json.loads(prepared.preprocess_metrics("catsdogs").read_text())
    assert summary == {
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


def test_rerun_gives_byte_identical_arrays(prepared, tiny_params):
    first = _arrays(prepared)
    preprocess("catsdogs", tiny_params.preprocess["catsdogs"], prepared)
    assert _arrays(prepared) == first
    assert len(first) == 6


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

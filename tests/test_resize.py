"""`preprocess.<dataset>.resize` on non-square images (squash, crop, pad) and the size report of preprocess.json."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.config.datasets import PreprocessParams
from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS, Paths
from pipeline.data.archive import write_zip
from pipeline.data.images import decode_image
from pipeline.data.manifests import COLUMNS
from pipeline.data.sources.cifar_batches import CIFAR10_CLASSES
from pipeline.data.store import load_meta, load_split
from pipeline.stages.preprocess import preprocess, size_report
from tests.helpers.datasets import write_raw_index
from tests.helpers.params import tiny_raw

BACKGROUND, RED, BLUE = (100, 100, 100), (255, 0, 0), (0, 0, 255)
SIZE = 40  # 200 px / 40 = 5: each output pixel averages whole source pixels, so colours stay exact


def _striped(width: int = 200, height: int = 150, stripe: int = 20) -> np.ndarray:
    """An RGB picture, gray but for a red stripe at one end of its long side and a blue one at the other."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    if width >= height:
        image[:, :stripe], image[:, -stripe:] = RED, BLUE
    else:
        image[:stripe], image[-stripe:] = RED, BLUE
    return image


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
@pytest.mark.parametrize(("color", "channels"), [("gray", 1), ("rgb", 3)])
@pytest.mark.parametrize(("width", "height"), [(200, 150), (150, 200), (37, 91)])
def test_every_resize_gives_size_by_size_by_channels(resize, color, channels, width, height):
    image = decode_image(_png(_striped(width, height)), SIZE, color, resize)
    assert image.shape == (SIZE, SIZE, channels)
    assert image.dtype == np.uint8


def test_squash_stretches_the_whole_image_to_the_square():
    image = decode_image(_png(_striped()), SIZE, "rgb", "squash")
    assert (image[:, :4] == RED).all() and (image[:, -4:] == BLUE).all()  # 20 of 200 px: 4 of 40
    assert (image[:, 4:-4] == BACKGROUND).all()


def test_squash_is_the_default_and_what_preprocess_did_before():
    data = _png(_striped())
    stretched = cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE), (SIZE, SIZE),
                           interpolation=cv2.INTER_AREA)
    assert np.array_equal(decode_image(data, SIZE, "gray"), stretched[..., None])


@pytest.mark.parametrize(("width", "height"), [(200, 150), (150, 200)])
def test_crop_keeps_the_centre_of_the_short_side_and_drops_the_long_sides_ends(width, height):
    image = decode_image(_png(_striped(width, height)), SIZE, "rgb", "crop")
    assert (image == BACKGROUND).all()  # the stripes lie in the 25 px cut from each end


def test_crop_keeps_a_square_image_whole():
    square = _striped(200, 200)
    assert np.array_equal(decode_image(_png(square), SIZE, "rgb", "crop"), decode_image(_png(square), SIZE, "rgb"))


def test_pad_keeps_the_whole_image_between_black_bars_of_the_right_size():
    image = decode_image(_png(_striped()), SIZE, "rgb", "pad")
    # 200x150 scaled by 40/200 is 40x30: 10 rows of bars, 5 above and 5 below
    assert (image[:5] == 0).all() and (image[-5:] == 0).all()
    inner = image[5:-5]
    assert (inner[:, :4] == RED).all() and (inner[:, -4:] == BLUE).all()
    assert (inner[:, 4:-4] == BACKGROUND).all()


def test_pad_puts_the_bars_beside_a_portrait_image():
    image = decode_image(_png(_striped(150, 200)), SIZE, "rgb", "pad")
    assert (image[:, :5] == 0).all() and (image[:, -5:] == 0).all()
    inner = image[:, 5:-5]
    assert (inner[:4] == RED).all() and (inner[-4:] == BLUE).all()
    assert (inner[4:-4] == BACKGROUND).all()


def test_an_unknown_resize_names_the_key_and_the_choices():
    with pytest.raises(PipelineError, match=r"preprocess\.catsdogs\.resize: Input should be 'squash', 'crop' or 'pad'"):
        parse_params(tiny_raw(**{"preprocess.catsdogs.resize": "stretch"}))


# Through the stage: a raw archive of images of known sizes, one skipped, in CIFAR-10's class folders.

MEMBERS = {  # name: (width, height); the empty file is skipped
    "train/cat/wide.png": (200, 150),
    "train/cat/tall.png": (150, 200),
    "train/dog/small.png": (64, 64),
    "train/dog/empty.png": None,
    "test/dog/strip.png": (1000, 30),
}


def _prepared(paths: Paths) -> Paths:
    members = {name: _png(_striped(*size)) if size else b"" for name, size in MEMBERS.items()}
    write_zip(paths.raw_archive("cifar10"), members.items())
    write_raw_index(paths, "cifar10", CIFAR10_CLASSES)
    paths.manifest_dir("cifar10").mkdir(parents=True)
    for split_name in SPLITS:
        rows = [
            (name, CIFAR10_CLASSES.index(name.split("/")[1]), name.split("/")[1])
            for name in MEMBERS
            if name.split("/")[0] == split_name
        ]
        pd.DataFrame(rows, columns=COLUMNS).to_csv(paths.manifest("cifar10", split_name), index=False)
    return paths


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
def test_preprocess_resizes_as_asked_and_records_it_in_meta_json(tmp_path, resize):
    paths = _prepared(Paths(tmp_path))
    preprocess("cifar10", PreprocessParams(image_size=SIZE, color="rgb", resize=resize), paths)
    assert load_meta(paths, "cifar10").resize == resize
    train = load_split(paths, "cifar10", "train")
    assert train.inputs.shape == (3, SIZE, SIZE, 3)
    assert np.array_equal(train.inputs[0], decode_image(_png(_striped(200, 150)), SIZE, "rgb", resize))


def test_preprocess_json_reports_the_decoded_sizes_and_keeps_the_split_counts(tmp_path):
    paths = _prepared(Paths(tmp_path))
    summary = preprocess("cifar10", PreprocessParams(image_size=SIZE, color="rgb"), paths)
    written = json.loads(paths.preprocess_metrics("cifar10").read_text())
    assert written == summary
    assert {name: written[name] for name in SPLITS} == {
        "train": {"kept": 3, "skipped": 1},
        "val": {"kept": 0, "skipped": 0},
        "test": {"kept": 1, "skipped": 0},
    }
    assert written["sizes"] == {
        "images": 4,
        "width": {"min": 64, "median": 175.0, "max": 1000},
        "height": {"min": 30, "median": 107.0, "max": 200},
        "buckets": {"1024x32": 1, "128x256": 1, "256x128": 1, "64x64": 1},
    }


def test_the_size_report_of_no_images_says_so():
    assert size_report(np.zeros((0, 2), np.int64)) == {"images": 0}


def test_buckets_round_each_side_to_the_nearest_power_of_two():
    assert size_report(np.array([[24, 40]]))["buckets"] == {"32x32": 1}
    assert size_report(np.array([[100, 300], [300, 100]]))["buckets"] == {"128x256": 1, "256x128": 1}

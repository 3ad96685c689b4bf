import cv2
import numpy as np
import pytest

from pipeline.data import near_duplicates
from pipeline.data.near_duplicates import Signatures, candidate_pairs, near_pairs, thumbnail
from pipeline.upkeep.near_duplicates_bench import bench, files_signatures, finder_pairs
from tests.helpers.planted import near_copy, planted, shot

NEIGHBOURS, MIN_SIMILARITY = 3, 0.9  # the audit's defaults


def _found_pairs(files: dict[str, bytes]) -> set[frozenset[str]]:
    return set(finder_pairs(files, NEIGHBOURS, MIN_SIMILARITY))


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _recall_precision(found: set[frozenset[str]], planted_pairs: set[frozenset[str]]) -> tuple[float, float]:
    hits = len(found & planted_pairs)
    return hits / len(planted_pairs), hits / max(1, len(found))


def test_cropped_halved_recompressed_colour_shifted_and_mirrored_copies_are_found_and_nothing_else():
    for seed in (0, 1):
        tree = planted(per_class=60, copies=12, moved=0, blanks=0, seed=seed)
        planted_pairs = {frozenset(pair) for pair in tree.copies}
        recall, precision = _recall_precision(_found_pairs(tree.files), planted_pairs)
        assert recall >= 0.9 and precision >= 0.95, (seed, recall, precision)


def test_copies_of_cifar_sized_images_are_found():
    originals = {f"train/{n}.png": shot(n, n % 3) for n in range(120)}
    files = {path: _png(cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)) for path, image in originals.items()}
    copies = {f"test/copy{n}.jpg": near_copy(originals[f"train/{n}.png"], n) for n in range(20)}
    planted_pairs = {frozenset((f"train/{n}.png", f"test/copy{n}.jpg")) for n in range(20)}
    recall, precision = _recall_precision(_found_pairs(files | copies), planted_pairs)
    assert recall >= 0.9 and precision >= 0.95, (recall, precision)


def test_a_mirror_image_is_a_near_duplicate_and_the_same_drawing_in_other_colours_is_not():
    image = shot(5, 0)
    files = {"a.png": _png(image), "b.png": _png(image[:, ::-1]), "c.png": _png(image[..., ::-1])}
    assert _found_pairs(files) == {frozenset(("a.png", "b.png"))}


def test_the_cell_search_finds_what_comparing_every_pair_finds(monkeypatch):
    rng = np.random.default_rng(0)
    descriptors = rng.normal(size=(600, near_duplicates.DESCRIPTOR)).astype(np.float32)
    descriptors[300:330] = descriptors[:30] + rng.normal(0, 0.05, (30, near_duplicates.DESCRIPTOR))
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    exact = candidate_pairs(descriptors, NEIGHBOURS)
    monkeypatch.setattr(near_duplicates, "EXACT", 100)
    cells = candidate_pairs(descriptors, NEIGHBOURS)
    assert {(a, b) for a, b in zip(cells["a"], cells["b"], strict=True)} == {(n, 300 + n) for n in range(30)}
    assert exact[["a", "b"]].equals(cells[["a", "b"]])


def test_pairs_are_closest_first_each_once_and_the_same_every_time():
    tree = planted(per_class=20, copies=6, moved=0, blanks=0, seed=3)
    _, signatures = files_signatures(tree.files)
    first, again = near_pairs(signatures, 5, -1.0), near_pairs(signatures, 5, -1.0)
    assert first.equals(again)
    assert list(first["distance"]) == sorted(first["distance"])
    assert not first.duplicated(["a", "b"]).any() and (first["a"] < first["b"]).all()


def test_fewer_than_two_images_have_no_pairs():
    signatures = Signatures.of(np.zeros((1, 32, 32, 3), np.uint8))
    assert near_pairs(signatures, NEIGHBOURS, MIN_SIMILARITY).empty


def test_an_unreadable_file_has_no_thumbnail():
    assert thumbnail(b"not an image") is None


@pytest.mark.slow
def test_the_benchmark_finds_every_kind_of_copy_on_a_small_set():
    rows = bench(originals=12, copies=6)
    assert all(row.recall >= 0.9 and row.precision >= 0.95 for row in rows), rows

import io
import zipfile

import cv2
import numpy as np

from pipeline.data.near_duplicates import Signatures, archive_signatures, image_signature, near_pairs
from tests.helpers.planted import planted, shot

MAX_DISTANCE, MIN_SIMILARITY = 36, 0.95  # the audit's defaults


def _found_pairs(files: dict[str, bytes]) -> set[frozenset[str]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    with zipfile.ZipFile(buffer) as archive:
        names, signatures = archive_signatures(archive, sorted(files))
    pairs = near_pairs(signatures, MAX_DISTANCE, MIN_SIMILARITY)
    return {frozenset((names[a], names[b])) for a, b in zip(pairs["a"], pairs["b"], strict=True)}


def test_resized_recompressed_cropped_colour_shifted_copies_are_found_and_nothing_else():
    for seed in (0, 1):
        tree = planted(per_class=60, copies=12, moved=0, blanks=0, seed=seed)
        found = _found_pairs(tree.files)
        planted_pairs = {frozenset(pair) for pair in tree.copies}
        recall = len(found & planted_pairs) / len(planted_pairs)
        precision = len(found & planted_pairs) / max(1, len(found))
        assert recall == 1.0, (recall, planted_pairs - found)
        assert precision == 1.0, (precision, found - planted_pairs)


def test_the_same_drawing_in_other_colours_is_not_a_near_duplicate():
    image = shot(5, 0)
    files = {"a.png": cv2.imencode(".png", image)[1].tobytes(), "b.png": cv2.imencode(".png", image[..., ::-1])[1].tobytes()}
    assert _found_pairs(files) == set()


def test_pairs_are_closest_first_each_once():
    bits = np.zeros((4, 192), bool)
    bits[1, :3] = True  # 3 bits from row 0
    bits[2, :1] = True  # 1 bit from row 0
    bits[3] = True  # far from all
    thumbnails = np.broadcast_to(np.arange(768, dtype=np.uint8).reshape(16, 16, 3) % 200, (4, 16, 16, 3))
    pairs = near_pairs(Signatures(bits, np.ascontiguousarray(thumbnails)), 4, MIN_SIMILARITY)
    assert list(pairs["distance"]) == [1, 2, 3]
    assert {(a, b) for a, b in zip(pairs["a"], pairs["b"], strict=True)} == {(0, 2), (1, 2), (0, 1)}


def test_an_unreadable_file_has_no_signature():
    assert image_signature(b"not an image") is None

"""Hypothesis strategies for hostile input: real JPEG and PNG files cut short, bit-flipped or made to declare huge
sizes, random bytes, names whose extension lies, and archive entries with odd names (`..`, absolute, drive letters,
backslashes, hidden, unicode), for the property tests of ingest, predict and the server (test_hostile_inputs.py)."""

import io
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

from hypothesis import strategies as st

from tests.helpers.image_trees import image

GOOD = {"good-1.jpg": image(3, 40, 30), "good-2.png": image(4, 30, 20, ".png", gray=True)}
REAL = [(".jpg", GOOD["good-1.jpg"]), (".png", GOOD["good-2.png"])]
SUFFIXES = (".jpg", ".jpeg", ".JPG", ".png", ".PNG", ".bmp", ".webp", ".gif", ".txt", ".jpg.exe", "")
PNG_SIZE = slice(16, 24)  # IHDR's width and height; its CRC follows the chunk's 13 bytes
PNG_IHDR, PNG_CRC = slice(12, 29), slice(29, 33)
JPEG_FRAME = b"\xff\xc0"  # baseline start-of-frame: length (2), precision (1), height (2), width (2)
# Sizes a header may declare: both sides small, or both so large that the image is over 50 megapixels and refused
# from its header. (A size just under the limit is decoded, in a second or more on a busy machine: the limit has
# its own tests, test_preprocess.py and test_serve.py.)
SMALL, HUGE = st.integers(0, 2048), st.integers(7072, 65535)
SIZES = st.one_of(st.tuples(SMALL, SMALL), st.tuples(HUGE, HUGE))


def truncated(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` cut off anywhere."""
    return st.integers(0, len(data) - 1).map(lambda end: data[:end])


def bit_flipped(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with one to eight bits flipped, headers included."""
    return st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=8).map(lambda bits: _flipped(data, bits))


def _flipped(data: bytes, bits: list[int]) -> bytes:
    flipped = bytearray(data)
    for bit in bits:
        flipped[bit // 8] ^= 1 << bit % 8
    return bytes(flipped)


def resized(data: bytes) -> st.SearchStrategy[bytes]:
    """The JPEG or PNG `data` with another width and height in its header (a PNG's checksum made to match)."""
    return SIZES.map(lambda size: _declaring(data, *size))


def _declaring(data: bytes, width: int, height: int) -> bytes:
    changed = bytearray(data)
    if data.startswith(b"\x89PNG"):
        changed[PNG_SIZE] = struct.pack(">II", width, height)
        changed[PNG_CRC] = struct.pack(">I", zlib.crc32(changed[PNG_IHDR]))
    else:
        at = data.find(JPEG_FRAME) + 5
        changed[at : at + 4] = struct.pack(">HH", height, width)
    return bytes(changed)


@st.composite
def hostile_files(draw) -> tuple[str, bytes]:
    """A file's name and bytes: a real image whole, cut short, bit-flipped or declaring a huge size, or random
    bytes; named with its format's extension, or another, or none; its name as `file_name` makes them."""
    suffix, data = draw(st.sampled_from(REAL))
    content = draw(st.one_of(st.just(data), truncated(data), bit_flipped(data), resized(data), st.binary(max_size=512)))
    return draw(file_name(st.one_of(st.just(suffix), st.sampled_from(SUFFIXES)))), content


def hostile_bytes() -> st.SearchStrategy[bytes]:
    """The bytes of `hostile_files`."""
    return hostile_files().map(lambda file: file[1])


def file_name(suffixes: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A name that can be a file's on any POSIX file system (no `/`, no NUL, at most 200 bytes), starting `h-` (so
    never hidden), any characters after it but `good` (never a good image's), then one of `suffixes`."""
    stems = st.text(st.characters(codec="utf-8", exclude_characters="/\0"), max_size=30)
    return st.builds(lambda stem, suffix: "h-" + stem + suffix, stems, suffixes).filter(
        lambda name: len(name.encode()) <= 200 and "good" not in name
    )


SEGMENTS = st.one_of(
    st.sampled_from([".", "", "train", "__MACOSX", ".hidden", "cat.7.jpg", "dog.8.jpg", "Thumbs.db", "a b", "é"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12),
)
# Names that point outside the archive's folder, each in its own way.
OUTSIDE = ("../cat.9.jpg", "/etc/cat.9.jpg", "..\\cat.9.jpg", "C:/cat.9.jpg", "train/../../cat.9.jpg")


def entry_names() -> st.SearchStrategy[str]:
    """An archive entry's name: one to four odd segments (empty, `.`, hidden, clutter, unicode, any characters)
    joined by `/`; a random segment may still make it point outside (a `\\..\\` in it)."""
    return st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join).filter(lambda name: 0 < len(name.encode()) <= 200)


TAR_KINDS = (tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE)
Entry = tuple[str, bytes, bytes, str]  # name, tar kind (REGTYPE...), bytes, link target


def entries() -> st.SearchStrategy[list[Entry]]:
    """Up to six archive entries: odd names, hostile bytes; in a tar also folders and links to odd targets, to a
    good image or outside the archive."""
    targets = st.one_of(entry_names(), st.just("train/cat.1.jpg"), st.sampled_from(OUTSIDE))
    return st.lists(st.tuples(entry_names(), st.sampled_from(TAR_KINDS), hostile_bytes(), targets), max_size=6)


def write_archive(path: Path, good: dict[str, bytes], odd: list[Entry]) -> Path:
    """A zip (by `path`'s name) or gzipped tar of the `good` files and the `odd` entries (in a zip, each a file)."""
    if path.suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a duplicate name: one of the odd entries zips allow
            for name, data in [*good.items(), *((name, data) for name, _, data, _ in odd)]:
                archive.writestr(name, data)
        path.write_bytes(buffer.getvalue())
        return path
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, data, target in [*((name, tarfile.REGTYPE, data, "") for name, data in good.items()), *odd]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path

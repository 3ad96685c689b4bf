"""Small image datasets in users' layouts, generated with OpenCV: tiny images of varied sizes, JPEG and PNG, gray and
colour, odd names, a zero-byte and a truncated JPEG, a duplicate, macOS and Windows clutter, empty folders; each
written as a folder, a zip or a tar.gz."""

import io
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

CLUTTER = {".DS_Store": b"\0\0\0\1Bud1", "Thumbs.db": b"\xd0\xcf\x11\xe0", "__MACOSX/._x.jpg": b"\0\5\26\7"}
KINDS = ("folder", "zip", "tar.gz")


def image(seed: int, width: int, height: int, suffix: str = ".jpg", gray: bool = False) -> bytes:
    """An encoded image of random pixels, `width` x `height`, gray or colour, in the format of `suffix`."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width) if gray else (height, width, 3), np.uint8)
    ok, data = cv2.imencode(suffix, pixels)
    assert ok
    return data.tobytes()


def class_images(classes: dict[str, int], prefix: str = "", start: int = 0) -> dict[str, bytes]:
    """`<prefix><class>/<n>.jpg|png` files, `classes` giving each class's count; sizes and formats vary."""
    files = {}
    for index, (cls, count) in enumerate(classes.items()):
        for n in range(count):
            seed = start + 100 * index + n
            suffix = ".png" if n % 3 == 2 else ".jpg"
            files[f"{prefix}{cls}/{n}{suffix}"] = image(seed, 8 + 2 * (seed % 5), 6 + seed % 4, suffix, gray=n % 2 == 1)
    return files


def named_images(classes: dict[str, int], prefix: str = "") -> dict[str, bytes]:
    """The Kaggle dogs-vs-cats layout: `<prefix><class>.<n>.jpg`."""
    return {
        f"{prefix}{cls}.{n}.jpg": image(10 * index + n, 10 + n, 8)
        for index, (cls, count) in enumerate(classes.items())
        for n in range(count)
    }


def truncated_jpeg() -> bytes:
    """A JPEG cut short in its scan data, as an interrupted download leaves it."""
    whole = image(5, 64, 48)
    return whole[: len(whole) * 3 // 4]


def messy(prefix: str, cls: str, other: str) -> dict[str, bytes]:
    """What real folders hold besides images: clutter, a name with spaces and unicode, a zero-byte and a truncated
    JPEG, a duplicate of another class's image, a README."""
    good = image(999, 12, 9)
    files = {f"{prefix}{name}": data for name, data in CLUTTER.items()}
    files |= {f"{prefix}{cls}/{name}": data for name, data in CLUTTER.items() if "/" not in name}
    files |= {
        f"{prefix}{cls}/chat noir é.JPG": image(7, 9, 9),
        f"{prefix}{cls}/empty.jpg": b"",
        f"{prefix}{cls}/cut.jpg": truncated_jpeg(),
        f"{prefix}{cls}/twin.jpg": good,
        f"{prefix}{other}/twin copy.jpg": good,
        f"{prefix}{cls}/.hidden.jpg": good,
        f"{prefix}README.txt": b"my dataset\n",
    }
    return files


def write_tree(root: Path, files: dict[str, bytes], kind: str) -> Path:
    """`files` (by posix path) as a folder, a zip or a tar.gz under `root`; returns its path. A name ending in `/` is
    a folder (its bytes unused): made, or a zip's folder entry, or a tar's directory member."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        target = root / "dataset"
        for name, data in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            if name.endswith("/"):
                (target / name).mkdir(exist_ok=True)
            else:
                (target / name).write_bytes(data)
    elif kind == "zip":
        target = root / "dataset.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, b"" if name.endswith("/") else data)
    else:
        target = root / "dataset.tar.gz"
        with tarfile.open(target, "w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                if name.endswith("/"):
                    info.type, data = tarfile.DIRTYPE, b""
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return target

"""A copy of CIFAR-10 as a class-folder tree, `train/<class>/*` + `test/<class>/*`: its PNG and JPEG images become
raw-archive members `<part>/<class>/<name>` (see `pipeline.data.archive`) with their original bytes."""

from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.data.sources.cifar_batches import PARTS, Member, progress
from pipeline.data.specs import CIFAR10, CIFAR10_CLASSES

CLASS_NAMES = ", ".join(CIFAR10_CLASSES)


def class_folder_members(root: Path, key: str) -> Iterator[Member]:
    """The images of a `train/<class>/*` + `test/<class>/*` tree, original bytes, as `<part>/<class>/<file>`.

    Files are named by their stem and lower-cased extension (PNG or JPEG, any size), in sorted order.
    """
    files = [item for part in PARTS for item in _part_files(root, part, key)]
    return progress(((name, path.read_bytes()) for name, path in files), total=len(files))


def _part_files(root: Path, part: str, key: str) -> list[tuple[str, Path]]:
    """(member name, file) of one part's images, sorted; the part must hold only CIFAR-10 class folders (any
    case: `Airplane/` is `airplane`)."""
    folder = root / part
    if not folder.is_dir():
        raise PipelineError(
            f"{key}: {root} has no {part}/ folder; a class-folder tree needs both train/<class>/ and test/<class>/"
        )
    classes = [path for path in sorted(folder.iterdir()) if path.is_dir() and not _hidden(path)]
    unknown = [path.name for path in classes if path.name.lower() not in CIFAR10_CLASSES]
    if unknown:
        raise PipelineError(
            f"{key}: {folder} has folders that are not CIFAR-10 classes ({', '.join(unknown)}); rename them to "
            f"the classes' names: {CLASS_NAMES}"
        )
    images: dict[str, Path] = {}
    for cls in classes:
        for path in sorted(cls.iterdir()):
            name = f"{part}/{cls.name.lower()}/{path.stem}{path.suffix.lower()}"
            if path.is_file() and not _hidden(path) and CIFAR10.class_of(name):
                images.setdefault(name, path)
    if not images:
        raise PipelineError(f"{key}: {folder} holds no PNG or JPEG images in class folders named {CLASS_NAMES}")
    return sorted(images.items())


def _hidden(path: Path) -> bool:
    """Dot files and macOS metadata (`.DS_Store`, `._x.png`, `__MACOSX`), which are never images."""
    return path.name.startswith((".", "__MACOSX"))

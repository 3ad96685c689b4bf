"""A user's image-classification dataset read in its own layout: which file is an image of which class (and, for
split folders, of which part).

`read_listing(tree, layout, classes, key)` reads a `pipeline.data.tree.Tree` in one of the `LAYOUTS`, detected
(`auto`) or named:

- `class_folders`: `<class>/<image>` (any depth below the class folder), classes the sorted folder names, as
  torchvision's ImageFolder;
- `split_folders`: `train/<class>/<image>`, with `val/` (or `valid/`, `validation/`) and `test/` if present;
- `names`: one folder of `<class>.<n>.<ext>` (the Kaggle dogs-vs-cats layout), class the part before the first dot;
- `csv`: a manifest of `path,label` rows (header required, paths relative to its folder): the only CSV with those
  columns at the root, or the one named by `csv:<path in the tree>`.

A single folder wrapping everything (`PetImages/` inside a zip) is looked through. Images are `.jpg`, `.jpeg`,
`.png`, `.bmp` and `.webp` files; hidden files, `Thumbs.db`, `.DS_Store`, `__MACOSX/`, names with control
characters, other files, images of classes left out by `classes`, images where the layout takes none, and the
entries the tree leaves out (symbolic link loops, broken symbolic links, unreadable files, folders that cannot be
listed, pipes and devices: `Tree.left_out`) are counted in `Listing.ignored`, by reason: never dropped unsaid. A
class folder is any visible folder where the layout puts classes, empty or not (an empty one is named like one
holding only other files). The rules the classes must follow (two at least, the same in every part, none empty) are
checked in `pipeline.data.classes`.
"""

import posixpath
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pipeline.core.errors import PipelineError
from pipeline.data.classes import Listing, Sample, few, settle_classes
from pipeline.data.labels_csv import has_columns, manifest_samples
from pipeline.data.tree import Tree

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LAYOUTS = ("class_folders", "split_folders", "names", "csv")
SPLIT_PARTS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
ACCEPTED = (
    "class_folders (<class>/<image>), split_folders (train/<class>/<image>, with val/ and test/ if any), names "
    "(<class>.<n>.jpg in one folder), csv (a manifest of path,label rows)"
)
OUTSIDE = "images outside the layout"
NOT_IMAGES = "not images"
NOT_LISTED = "images not in the CSV"
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class _Files:
    """The tree's files less macOS and Windows clutter, its folders, and what was left out, counted by reason."""

    source: str
    every: list[str]  # all files, clutter too
    folders: list[str]  # every folder, empty or not (a class folder holding only Thumbs.db is still a class folder)
    images: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> list[str]:
        """The files less the clutter, sorted."""
        return sorted(self.images + self.others)


def read_listing(
    tree: Tree, layout: str = "auto", classes: list[str] | None = None, key: str = "data.<name>"
) -> Listing:
    """The images of `tree` with their class (and part), read in `layout` (or the one detected for `auto`).

    `classes` fixes the class order, or takes a subset (the others' images are counted as ignored). Errors name `key`
    and the tree: no images, a root that fits no layout (listing what it holds), one class, an empty class, parts
    whose classes differ, a `classes` entry that is not a class.
    """
    if layout != "auto" and layout not in LAYOUTS and not layout.startswith("csv:"):
        raise PipelineError(f"{key}.layout: unknown layout {layout!r}; choose auto or one of: {ACCEPTED}")
    files = _sorted_out(tree)
    if not files.images and not layout.startswith("csv"):
        raise PipelineError(
            f"{key}: {tree.shown} holds no images ({', '.join(IMAGE_SUFFIXES)}); found {_found(files, '')}; "
            f"accepted layouts: {ACCEPTED}"
        )
    kind, root = _detect(files, tree, key) if layout == "auto" else _named(layout, files, key)
    where = f"{tree.shown}" + (f", folder {root}" if root and kind != "csv" else "")
    samples, seen, used = READERS[kind](tree, files, root, f"{key}: {where}")
    files.ignored[NOT_IMAGES] += len([name for name in files.others if name not in used])
    files.ignored[NOT_LISTED if kind == "csv" else OUTSIDE] += len([name for name in files.images if name not in used])
    return replace(settle_classes(kind, samples, seen, classes, +files.ignored, key, where), root=root)


def _sorted_out(tree: Tree) -> _Files:
    """The tree's files sorted into images, others and clutter; what the tree left out counted by its reason (or
    as clutter, which it is first)."""
    names = tree.names()
    files = _Files(tree.shown, names, tree.folders())
    for name, reason in tree.left_out().items():
        files.ignored[clutter(name) or reason] += 1
    for name in names:
        reason = clutter(name)
        if reason:
            files.ignored[reason] += 1
        elif name.lower().endswith(IMAGE_SUFFIXES):
            files.images.append(name)
        else:
            files.others.append(name)
    return files


def clutter(name: str) -> str:
    """Why a file is never part of a dataset (macOS and Windows metadata, hidden files, a name with a control
    character: a line break, a tab, an escape, which the CSV files and terminal lines that list images would break
    on); "" for the others."""
    if CONTROL.search(name):
        return "control characters in the name"
    *folders, base = name.split("/")
    if "__MACOSX" in folders:
        return "__MACOSX/"
    if base == ".DS_Store":
        return ".DS_Store"
    if base.lower() == "thumbs.db":
        return "Thumbs.db"
    if any(part.startswith(".") for part in name.split("/")):
        return "hidden files"
    return ""


def _level(names: list[str], root: str) -> tuple[list[str], list[str]]:
    """The folders (holding some of `names`) and the files right under `root`."""
    below = [name[len(root):] for name in names if name.startswith(root)]
    return sorted({name.split("/", 1)[0] for name in below if "/" in name}), [name for name in below if "/" not in name]


def _named_class(name: str) -> str:
    """The class of a `<class>.<n>.<ext>` file name; "" for other names."""
    stem = posixpath.splitext(posixpath.basename(name))[0]
    return stem.split(".", 1)[0] if "." in stem else ""


def _manifests(files: _Files, root: str) -> list[str]:
    """The CSV files right under `root`."""
    return [root + name for name in _level(files.others, root)[1] if name.lower().endswith(".csv")]


def _detect(files: _Files, tree: Tree, key: str) -> tuple[str, str]:
    """The layout of the files, and its root (for `csv`, the manifest), looking through single wrapping folders."""
    root = ""
    while True:
        manifests = [name for name in _manifests(files, root) if has_columns(tree.read(name))]
        if len(manifests) == 1:
            return "csv", manifests[0]
        dirs, images = _level(files.images, root)
        parts = [name for name in dirs if name.lower() in SPLIT_PARTS]
        nested = all(_level(files.images, f"{root}{name}/")[0] for name in parts)
        if len(manifests) > 1 or (parts and "train" in {p.lower() for p in parts} and parts != dirs):
            break
        if dirs and not images and parts == dirs and nested:
            return "split_folders", root
        if images and not dirs and any(map(_named_class, images)):
            return "names", root
        if len(dirs) == 1 and not images:
            inner = f"{root}{dirs[0]}/"
            inner_dirs, inner_images = _level(files.images, inner)
            if not inner_dirs and not any(map(_named_class, inner_images)) and not _manifests(files, inner):
                return "class_folders", root  # a single class folder: settle_classes says one class
            root = f"{root}{dirs[0]}/"
            continue
        if len(dirs) > 1 and not images:
            return "class_folders", root
        break
    raise PipelineError(
        f"{key}: {tree.shown} is in no layout it can tell; found {_found(files, root)}; accepted "
        f"layouts: {ACCEPTED} (or name one with `layout`, and csv:<file> to choose among CSV files)"
    )


def _named(layout: str, files: _Files, key: str) -> tuple[str, str]:
    """The root of a layout the user named (a manifest for `csv`), looking through single wrapping folders."""
    if layout.startswith("csv:"):
        name = layout.removeprefix("csv:").strip("/")
        if name not in files.others:
            raise PipelineError(
                f"{key}.layout: {files.source} holds no {name!r}; its CSV files: "
                f"{few([n for n in files.others if n.lower().endswith('.csv')]) or 'none'}"
            )
        return "csv", name
    stop: Callable[[str, list[str], list[str]], bool] = {
        "class_folders": lambda root, dirs, images: bool(images) or not _level(files.images, f"{root}{dirs[0]}/")[0],
        "split_folders": lambda root, dirs, images: dirs[0].lower() in SPLIT_PARTS,
        "names": lambda root, dirs, images: bool(images),
        "csv": lambda root, dirs, images: bool(_manifests(files, root)),
    }[layout]
    root = ""
    while True:
        dirs, images = _level(files.images if layout != "csv" else files.kept, root)
        if len(dirs) != 1 or stop(root, dirs, images):
            break
        root = f"{root}{dirs[0]}/"
    if layout != "csv":
        return layout, root
    manifests = _manifests(files, root)
    if len(manifests) != 1:
        raise PipelineError(
            f"{key}.layout: {files.source} holds {len(manifests) or 'no'} CSV files at its root "
            f"({few(manifests) or 'found ' + _found(files, root)}); name the manifest with csv:<file>"
        )
    return "csv", manifests[0]


def _found(files: _Files, root: str) -> str:
    """A few of the entries right under `root` (clutter only when there is nothing else)."""
    dirs, names = _level(files.kept or files.every, root)
    return f"in {root or 'its root'}: " + (few([f"{name}/" for name in dirs] + names) or "nothing")


Found = tuple[list[Sample], dict[str | None, set[str]], set[str]]


def _class_folders(tree: Tree, files: _Files, root: str, where: str) -> Found:
    """`<root>/<class>/...<image>`; a class is any visible folder under the root, with images or not."""
    samples = [Sample(name, _top(name, root), None) for name in _nested(files.images, root, 2)]
    visible = {name for name in _subfolders(files, root) if not name.startswith(".") and name != "__MACOSX"}
    return samples, {None: visible}, {sample.path for sample in samples}


def _subfolders(files: _Files, root: str) -> list[str]:
    """The names of the folders right under `root`, empty ones too."""
    return [name[len(root):] for name in files.folders if name.startswith(root) and "/" not in name[len(root):]]


def _top(name: str, root: str) -> str:
    """The first folder of `name` below `root`."""
    return name[len(root):].split("/", 1)[0]


def _split_folders(tree: Tree, files: _Files, root: str, where: str) -> Found:
    """`<root>/<part>/<class>/...<image>`, part train, val (valid, validation) or test."""
    dirs = [name for name in _subfolders(files, root) if name.lower() in SPLIT_PARTS]
    parts = {SPLIT_PARTS[name.lower()]: name for name in dirs}
    if len(parts) < len(dirs):
        raise PipelineError(f"{where} has several folders for one part ({', '.join(dirs)}); keep one per part")
    if "train" not in parts:
        raise PipelineError(
            f"{where} has {few([f'{name}/' for name in dirs]) or 'no part folders'} but no train/; split folders "
            "need train/<class>/ (val/ and test/ are optional)"
        )
    samples, seen = [], {}
    for part, folder in parts.items():
        inner = f"{root}{folder}/"
        found = _class_folders(tree, files, inner, where)
        samples += [Sample(sample.path, sample.cls, part) for sample in found[0]]
        seen[part] = found[1][None]
    return samples, seen, {sample.path for sample in samples}


def _names(tree: Tree, files: _Files, root: str, where: str) -> Found:
    """`<root>/<class>.<n>.<ext>`: one folder, the class in each file's name."""
    samples = [Sample(root + name, _named_class(name), None) for name in _level(files.images, root)[1]]
    samples = [sample for sample in samples if sample.cls]
    return samples, {None: {sample.cls for sample in samples}}, {sample.path for sample in samples}


def _csv(tree: Tree, files: _Files, manifest: str, where: str) -> Found:
    """The `path,label` rows of the manifest, paths relative to its folder."""
    samples, used = manifest_samples(tree, manifest, set(files.images), set(files.others), where)
    return samples, {None: {sample.cls for sample in samples}}, used


def _nested(names: list[str], root: str, depth: int) -> list[str]:
    """The names under `root` at least `depth` parts deep."""
    return [name for name in names if name.startswith(root) and name[len(root):].count("/") >= depth - 1]


READERS: dict[str, Callable[[Tree, _Files, str, str], Found]] = {
    "class_folders": _class_folders,
    "split_folders": _split_folders,
    "names": _names,
    "csv": _csv,
}

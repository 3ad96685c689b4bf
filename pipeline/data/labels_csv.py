"""The `csv` layout's manifest (see `pipeline.data.layouts`): a header naming the columns `path` and `label` (others
may follow), then one row per image, its path relative to the CSV's folder."""

import csv
import io
import posixpath
from pathlib import PureWindowsPath

from pipeline.core.errors import PipelineError
from pipeline.data.classes import Sample, few
from pipeline.data.tree import Tree

COLUMNS = ("path", "label")


def has_columns(data: bytes) -> bool:
    """Whether a CSV file's header names the manifest's columns (any case, any others beside)."""
    header = data.decode("utf-8-sig", errors="replace").splitlines()[:1]
    return bool(header) and set(COLUMNS) <= {column.strip().lower() for column in header[0].split(",")}


def manifest_samples(
    tree: Tree, manifest: str, images: set[str], others: set[str], where: str
) -> tuple[list[Sample], set[str]]:
    """The images the manifest lists, with their labels, and every file it accounts for (itself and each row's).

    `images` and `others` are the tree's image and other files; a row naming another kind of file is not a sample.
    `where` heads the errors: a missing header, a row without a label, a path outside the tree or listed twice,
    files that are not in the tree.
    """
    folder = posixpath.dirname(manifest)
    samples, missing, listed = [], [], set()
    for number, (path, label) in enumerate(_rows(tree, manifest, where), start=2):
        name = posixpath.normpath(posixpath.join(folder, path.replace("\\", "/")))
        if PureWindowsPath(path).drive or path.startswith(("/", "\\")) or name.split("/")[0] == "..":
            raise PipelineError(f"{where}: {manifest} row {number}: {path!r} points outside the tree; give paths "
                                "relative to the CSV's folder")
        if not label:
            raise PipelineError(f"{where}: {manifest} row {number} has no label; give every row one")
        if name in listed:
            raise PipelineError(f"{where}: {manifest} row {number} lists {path!r} again; list each image once")
        if name in images:
            samples.append(Sample(name, label, None))
        elif name not in others:
            missing.append(path)
        listed.add(name)
    if missing:
        raise PipelineError(
            f"{where}: {manifest} lists {len(missing)} files that are not there: {few(missing)}; "
            "paths are relative to the CSV's folder"
        )
    return samples, {manifest, *listed}


def _rows(tree: Tree, manifest: str, where: str) -> list[tuple[str, str]]:
    """The (path, label) of each non-blank row, stripped."""
    try:
        text = tree.read(manifest).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(f"{where}: {manifest} is not UTF-8 text; save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text))
    header = [column.strip().lower() for column in next(reader, [])]
    if not set(COLUMNS) <= set(header):
        raise PipelineError(
            f"{where}: {manifest} needs a header row naming the columns path and label (it has: "
            f"{', '.join(header) or 'no header'}); add the header `path,label`"
        )
    path_at, label_at = (header.index(column) for column in COLUMNS)
    return [
        (_cell(row, path_at), _cell(row, label_at)) for row in reader if any(cell.strip() for cell in row)
    ]


def _cell(row: list[str], at: int) -> str:
    return row[at].strip() if at < len(row) else ""

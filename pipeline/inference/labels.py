"""`--labels`: the true class of images to predict, so that a model can be scored on images that were never part of
the pipeline. Either a CSV with a `path,label` header (paths relative to the CSV's folder; a member of an archive as
`archive.zip/<path inside it>`), or a folder, zip or tar of class folders (`<class>/<image>`, any depth below the
class folder: the folder right under the root names the class).

Labels are found by each image's key (`pipeline.inference.inputs.image_key`): give PATH and `--labels` the same
folder, or a CSV beside the images, and every image finds its label.
"""

import csv
import io
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.data.labels_csv import COLUMNS
from pipeline.data.tree import open_tree
from pipeline.inference.inputs import image_key, image_names

KEY = "--labels"


def read_labels(path: Path, classes: list[str]) -> dict[str, str]:
    """The class of each image `path` labels, by image key. A label that is not one of the model's `classes`, a CSV
    without the header or a row without a label is an error, before any image is predicted."""
    if path.suffix.lower() == ".csv":
        labels = _csv_labels(path)
    else:
        with open_tree(path, KEY) as tree:
            names, _ = image_names(tree)
            labels = {image_key(path, name): name.split("/", 1)[0] for name in names if "/" in name}
    unknown = sorted(set(labels.values()) - set(classes))
    if unknown:
        raise PipelineError(
            f"{KEY}: {path}: {', '.join(map(repr, unknown))} {'is not a class' if len(unknown) == 1 else 'are not classes'}"
            f" of the model (its classes: {', '.join(classes)}); name the labels or class folders after them"
        )
    return labels


def _csv_labels(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(f"{KEY}: {path} is not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as exc:
        raise PipelineError(f"{KEY}: cannot read {path} ({exc.strerror}); give a CSV of path,label rows") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if not set(COLUMNS) <= set(columns):
        found = ", ".join(columns) or "nothing"
        raise PipelineError(f"{KEY}: {path} has no `path,label` header (its first row has {found}); add that header")
    labels = {}
    for row in reader:
        image, label = (str(row.get(columns[column]) or "").strip() for column in COLUMNS)
        if image and label:
            labels[image_key(path.parent / image)] = label
        elif image or label:
            raise PipelineError(f"{KEY}: {path} line {reader.line_num} lacks a path or a label; give every row both")
    return labels

"""The params blocks that declare a user's dataset, as `pipeline inspect` suggests them from what it found: where the
images are (`data`), how they are split (`split`), how they are stored (`preprocess`) and a first model (`models`),
each with comments that say why. `write_blocks` adds them to params.yaml in place, keeping its comments, order and
formatting (ruamel's round-trip mode), once the result validates; the file is replaced atomically."""

import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from pipeline.analysis.inspect import Inspection, inspect, inspection_text
from pipeline.onboarding.params_editing import append_entry, load_document, round_trip_yaml, save_document
from pipeline.core.errors import PipelineError
from pipeline.data.sources.hf import HUB_PREFIX

SIDES = (32, 48, 64, 96, 128)  # the largest not above the images' median side; 128 is plenty for a small CNN
# Squash stretches an image to a square. When the images share one aspect ratio, every image is stretched the same
# way and nothing is lost; when their ratios differ much (landscape beside portrait), the same object comes out wide
# in one image and narrow in the next, so crop (the centred square, shapes kept) serves a classifier better. "Much":
# the 90th percentile of width/height over the 10th (a few odd images do not decide) is above this.
ASPECT_SPREAD = 1.25
IMBALANCE = 1.5  # largest / smallest class in the training pool above this: weigh the loss (train.class_weights)
FRACTIONS = {"train": None, "val": 0.15, "test": 0.15}
ARCH = "catsdogs_cnn"  # the classic small convnet: any size from 22 px (SIDES start at 32), any number of classes
BLOCKS = ("data", "split", "preprocess", "models")
NAME = re.compile(r"[a-z][a-z0-9_]*")
SHOWN_CLASSES = 6


@dataclass(frozen=True)
class ParamsEntry:
    """One entry to add: `values` under `block.key`, with `comment` above the key and `notes` above some values."""

    block: str
    key: str
    values: dict[str, Any]
    comment: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def node(self) -> CommentedMap:
        """The values as a round-trip mapping, the notes above their keys."""
        node = CommentedMap(self.values)
        for key, note in self.notes.items():
            node.yaml_set_comment_before_after_key(key, before=note, indent=4)
        return node


def declare(path: Path, layout: str, write: str | None, params_file: Path) -> str:
    """What `pipeline inspect` prints: the inspection, the params blocks that declare the dataset, and, with `write`
    (the dataset's name), what was added to `params_file` and the command to run next."""
    if write:
        check_name(params_file, write)  # before reading what may be thousands of images
    found = inspect(path, layout)
    name = write or dataset_name(path)
    entries = suggest(found, name, path, layout)
    text = f"{inspection_text(found)}\nparams to declare it as {name!r} (--write NAME adds them to params.yaml):\n\n"
    text += blocks_text(entries)
    if not _audited(params_file, name):
        text += audit_hint(name)
    if write:
        added = write_blocks(params_file, name, entries)
        text += f"\nadded {', '.join(added)} to {params_file}; then run:\n  uv run dvc repro evaluate@{model_name(name)}\n"
    return text


def audit_hint(name: str) -> str:
    """The audit block to add, and why, as YAML comments (the printed blocks stay YAML to paste): a dataset without
    one is not checked for near-duplicates or wrong labels."""
    return (
        f"\n# No `audit.{name}` block yet: near-duplicates (the same shot in train and test), wrong labels and\n"
        f"# outliers go unchecked. To look for them, add\n# audit:\n#   {name}: "
        f"{{model: {model_name(name)}, folds: 5, epochs: 5}}\n"
        f"# then run `uv run dvc repro audit@{name}` and `uv run pipeline audit review {name}` (docs/how-to/audit.md).\n"
    )


def _audited(params_file: Path, name: str) -> bool:
    """Whether `params_file` has an `audit.<name>` block (False when the file is missing or unreadable)."""
    try:
        audits = load_document(params_file).get("audit")
    except PipelineError:
        return False
    return isinstance(audits, dict) and name in audits


def dataset_name(path: Path) -> str:
    """A params key for the dataset at `path`: its name less archive suffixes, lower-case, `_` for other signs."""
    stem = re.sub(r"(\.tar)?\.(zip|tar|tgz|gz|bz2|xz|tbz2|txz)$", "", Path(path).name.lower())
    name = re.sub(r"[^a-z0-9]+", "_", stem).strip("_") or "mydata"
    return name if name[0].isalpha() else f"data_{name}"


def model_name(name: str) -> str:
    """The name of the first model on dataset `name`."""
    return f"{name}_cnn"


def suggested_side(median_side: int) -> int:
    """The preprocess size for images whose median shorter side is `median_side`: the largest of `SIDES` not above
    it (the smallest for tiny images)."""
    return max([side for side in SIDES if side <= median_side], default=SIDES[0])


def aspect_range(sizes: list[tuple[int, int]]) -> tuple[float, float]:
    """The 10th and 90th percentiles of the images' width / height (1, 1 when there are no sizes)."""
    ratios = sorted(width / height for width, height in sizes) or [1.0]
    return ratios[round(0.1 * (len(ratios) - 1))], ratios[round(0.9 * (len(ratios) - 1))]


def suggest(found: Inspection, name: str, path: Path, layout: str = "auto") -> list[ParamsEntry]:
    """The entries declaring the dataset `found` at `path` (as given; written absolute) as `name`, read in `layout`
    (`auto`: the one detected is written)."""
    listing = found.listing
    layout = listing.layout if layout == "auto" else layout
    shown = ", ".join(listing.classes[:SHOWN_CLASSES]) + (", ..." if len(listing.classes) > SHOWN_CLASSES else "")
    data = _hub_data(found, name) if found.hub else ParamsEntry(
        "data",
        name,
        {"source": "local", "path": os.path.abspath(os.path.expanduser(path)), "layout": layout, "classes": None},
        notes={
            "layout": "detected (pinned here, so that files added later cannot change it)"
            if listing.layout == layout
            else "as named with --layout",
            "classes": f"null: every class, sorted ({shown}); a list fixes the order or takes a subset",
        },
    )
    model = ParamsEntry(
        "models",
        model_name(name),
        {"dataset": name, "arch": ARCH},
        comment=f"\nA first model on {name}: the small {ARCH} convnet (any size and number of classes), train defaults",
    )
    return [data, _split(found, name), _preprocess(found, name), model]


def _hub_data(found: Inspection, name: str) -> ParamsEntry:
    """The `data` entry of a Hub dataset: its id (`hf:` dropped) pinned at the commit read, or its folder made
    absolute (the shards' hash is recorded by the download stage)."""
    hub_id = str(found.path).removeprefix(HUB_PREFIX)
    if hub_id != str(found.path):
        values, note = {"source": "hf", "path": hub_id, "revision": found.revision}, "the commit read, pinned"
    else:
        values, note = {"source": "hf", "path": str(found.path)}, ""
    return ParamsEntry(
        "data",
        name,
        {**values, "classes": None},
        notes={"classes": "null: the ClassLabel's names, in label order", **({"revision": note} if note else {})},
    )


def blocks_text(entries: list[ParamsEntry]) -> str:
    """The entries as YAML to paste into params.yaml, one top-level block each, a blank line between."""
    texts = []
    for entry in entries:
        block = CommentedMap({entry.key: entry.node()})
        if entry.comment:
            block.yaml_set_comment_before_after_key(entry.key, before=entry.comment.lstrip("\n"), indent=2)
        text = io.StringIO()
        round_trip_yaml().dump(CommentedMap({entry.block: block}), text)
        texts.append(text.getvalue())
    return "\n".join(texts)


def check_name(params_file: Path, name: str) -> CommentedMap:
    """`params_file` as a round-trip document, once `name` is checked to be a valid dataset name that none of its
    `data`, `split`, `preprocess` and `models` blocks uses yet, nor its model's name (an error naming the keys)."""
    if not NAME.fullmatch(name):
        raise PipelineError(
            f"--write {name!r}: a dataset name is lower-case letters, digits and _, starting with a letter"
        )
    document = load_document(params_file)
    model = model_name(name)
    wanted = [*((block, name) for block in BLOCKS), ("data", model), ("models", model)]  # a model is no dataset's name
    taken = [f"{block}.{key}" for block, key in wanted if isinstance(document.get(block), dict) and key in document[block]]
    if taken:
        raise PipelineError(
            f"{params_file} already has {', '.join(taken)}; choose another NAME for --write, or edit the blocks there"
        )
    return document


def write_blocks(params_file: Path, name: str, entries: list[ParamsEntry]) -> list[str]:
    """Add the entries to `params_file`, keeping everything else as it is, once `check_name` passes and the result
    validates (`parse_params`); the file is replaced atomically. Returns the keys added."""
    document = check_name(params_file, name)
    for entry in entries:
        target = document.get(entry.block)
        if isinstance(target, CommentedMap) and target:
            append_entry(target, entry.key, entry.node())
        else:  # a block params.yaml lacks (or has empty): added whole, at the end
            target = CommentedMap({entry.key: entry.node()})
            append_entry(document, entry.block, target)
        if entry.comment:
            target.yaml_set_comment_before_after_key(entry.key, before=entry.comment, indent=2)
    save_document(params_file, document, f"--write {name}: the blocks were not added")
    return [f"{entry.block}.{entry.key}" for entry in entries]


def _split(found: Inspection, name: str) -> ParamsEntry:
    """Fractions of each class (stratified), with comments on the parts the dataset brings and on class balance."""
    samples = found.listing.samples
    given = [part for part in ("val", "test") if any(sample.part == part for sample in samples)]
    pool = Counter(sample.cls for sample in samples if sample.part in (None, "train"))
    (big, most), (small, least) = pool.most_common()[0], pool.most_common()[-1]
    ratio = most / least
    lines = []
    if given:
        one = len(given) == 1
        lines.append(
            f"{' and '.join(f'{part}/' for part in given)} come{'s' if one else ''} with the dataset: used as given, "
            f"so {' and '.join(given)} below {'is' if one else 'are'} unused "
            f"({' and '.join(f'max_{part}_per_class' for part in given)} cap{'s it' if one else ' them'})"
            + (f"; {'test' if given == ['val'] else 'val'} is held out of train/" if one else "")
        )
    sizes = f"largest class {big}: {most} images, smallest {small}: {least}"
    if ratio > IMBALANCE:
        lines += [
            f"imbalanced ({sizes}; {ratio:.1f}x): fractions keep each class's share in",
            "every split; consider train.class_weights: auto (or class_weights: auto in the model block)",
        ]
    else:
        lines.append(f"balanced ({sizes}): fractions of each class (ints would take the same count from each)")
    return ParamsEntry("split", name, dict(FRACTIONS), comment="\n".join(lines))


def _preprocess(found: Inspection, name: str) -> ParamsEntry:
    """Size from the median short side, gray if every image is, crop when the aspect ratios vary (ASPECT_SPREAD)."""
    low, high = aspect_range(found.sizes)
    resize = "crop" if high / low > ASPECT_SPREAD else "squash"
    why = (
        f"crop: widths / heights vary ({low:.2f} to {high:.2f}, 10th to 90th percentile); squash would stretch "
        "each its own way" if resize == "crop" else
        f"squash: the images' widths / heights are alike ({low:.2f} to {high:.2f}); all are stretched the same way"
    )
    return ParamsEntry("preprocess", name, {
        "image_size": suggested_side(found.side), "color": found.color, "resize": resize, "normalize": True,
    }, notes={
        "image_size": f"the largest of {', '.join(map(str, SIDES))} not above the images' median short side ({found.side} px)"
        if found.side >= SIDES[0]
        else f"the smallest of {', '.join(map(str, SIDES))}: the images' median short side is {found.side} px",
        "color": "every image is gray" if found.gray else "colour images",
        "resize": why,
    })
"""`pipeline inspect`: a user's folder or archive looked at before it is declared in params.yaml.

It is read in its layout (`pipeline.data.layouts`), then every image's header is read (with Pillow, never decoded)
for its size, format and colour, checked as preprocess will check it (`pipeline.data.images.refusal`), and hashed
to find files with the same content. A class whose every image is unreadable is named: download would refuse it.
`inspection_text` writes it all down; `pipeline.onboarding.declare` turns it into the params blocks that declare the
dataset. A Hugging Face Hub dataset is looked at the same way: `hf:OWNER/NAME` (fetched into the Hub's cache, at its
main branch) or a folder holding parquet shards (`pipeline.data.sources.hf`).
"""

import hashlib
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from pipeline.data.classes import Listing, skip_counts, unusable_classes
from pipeline.data.images import refusal
from pipeline.data.layouts import read_listing
from pipeline.data.sources.hf import HUB_PREFIX, open_hub
from pipeline.data.sources.hub_parquet import is_parquet_folder
from pipeline.data.tree import Tree, open_tree

KEY = "inspect"
GRAY_MODES = ("1", "L")


@dataclass
class Inspection:
    """What `inspect` found: the listing, and of its images the sizes (width, height) and formats of those that may
    be decoded, the unreadable ones with the reason, the groups of files with the same content, and whether every
    readable image is gray; for a Hub dataset (`hub`), the revision read."""

    path: Path
    listing: Listing
    sizes: list[tuple[int, int]] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    gray: bool = True
    hub: bool = False
    revision: str = ""

    @property
    def side(self) -> int:
        """The median of the readable images' shorter sides (0 when none is readable)."""
        return _median([min(size) for size in self.sizes]) if self.sizes else 0

    @property
    def color(self) -> str:
        """The preprocess colour the images call for: gray if every readable one is gray, else rgb."""
        return "gray" if self.gray else "rgb"


def is_hub(path: Path | str) -> bool:
    """True for a Hugging Face Hub dataset: `hf:OWNER/NAME`, or a folder holding parquet shards."""
    return str(path).startswith(HUB_PREFIX) or is_parquet_folder(Path(path).expanduser())


def inspect(path: Path, layout: str = "auto") -> Inspection:
    """Read the dataset at `path` (a folder, zip or tar, or a Hub dataset: see `is_hub`) in `layout` and look at
    every image's header."""
    path = Path(path) if str(path).startswith(HUB_PREFIX) else Path(path).resolve()
    with _opened(path) as tree:
        listing = read_listing(tree, tree.layout or layout, tree.classes, key=KEY)
        found = Inspection(path, listing, hub=is_hub(path), revision=tree.revision)
        by_content: dict[str, list[str]] = defaultdict(list)
        names = [sample.path for sample in listing.samples]
        files = tree.read_many(names)
        for name, data in tqdm(files, total=len(names), desc="inspect", unit="img", disable=None, leave=False):
            by_content[hashlib.sha256(data).hexdigest()].append(name)
            reason = refusal(data, name)
            if reason:
                found.unreadable.append((name, reason))
                continue
            with Image.open(io.BytesIO(data)) as header:
                found.sizes.append(header.size)
                found.formats[header.format] += 1
                found.gray &= header.mode in GRAY_MODES
    found.unreadable.sort()
    found.duplicates = sorted(sorted(group) for group in by_content.values() if len(group) > 1)
    found.gray &= bool(found.sizes)
    return found


def _opened(path: Path) -> Tree:
    """The tree of the dataset at `path`: a Hub dataset's shards, or a folder, zip or tar."""
    return open_hub(str(path), KEY) if is_hub(path) else open_tree(path, KEY)


def inspection_text(found: Inspection) -> str:
    """The inspection as text: layout, classes with counts, sizes, formats, unreadable files, duplicates, ignored
    files."""
    listing = found.listing
    lines = [f"{found.path}: {listing.layout} layout, {len(listing.classes)} classes, {len(listing.samples)} images"]
    lines += [f"revision {found.revision}"] if found.revision else []
    lines += ["", *_class_table(listing), ""]
    if found.sizes:
        for axis, values in (("width", [w for w, _ in found.sizes]), ("height", [h for _, h in found.sizes])):
            lines.append(
                f"{axis:<6}  min {min(values)}, median {_median(values)}, max {max(values)} pixels"
            )
        colour = "all gray" if found.gray else "colour"
        formats = ", ".join(f"{fmt} {count}" for fmt, count in sorted(found.formats.items()))
        lines.append(f"formats {formats} ({colour})")
    lines += _section("unreadable", [f"{path}: {reason}" for path, reason in found.unreadable])
    lines += _unusable_classes(found)
    lines += _section("duplicates (same content)", [" = ".join(group) for group in found.duplicates])
    lines += _section("ignored files", [f"{reason}: {count}" for reason, count in listing.ignored.items()], count=False)
    return "\n".join(lines) + "\n"


def _unusable_classes(found: Inspection) -> list[str]:
    """The classes (of each part) with no usable image, which download refuses; no line when there are none."""
    unusable = unusable_classes(found.listing, dict(found.unreadable))
    items = [f"{part}/{cls}" if part else cls for part, cls in unusable]
    counted = [f"{item}: {skip_counts(reasons)}" for item, reasons in zip(items, unusable.values(), strict=True)]
    return _section("classes download refuses (no usable image)", counted, count=False) if counted else []


def _class_table(listing: Listing) -> list[str]:
    """Image counts per class, per part for split folders, with a total line."""
    counts = Counter((sample.cls, sample.part) for sample in listing.samples)
    parts = [part for part in ("train", "val", "test") if any(p == part for _, p in counts)] or [None]
    width = max(len("class"), *(len(cls) for cls in listing.classes))
    header = f"{'class':<{width}}" + "".join(f"  {part or 'images':>7}" for part in parts)
    rows = [f"{cls:<{width}}" + "".join(f"  {counts[cls, part]:>7}" for part in parts) for cls in listing.classes]
    totals = f"{'total':<{width}}" + "".join(
        f"  {sum(counts[cls, part] for cls in listing.classes):>7}" for part in parts
    )
    return [header, *rows, totals]


def _section(title: str, items: list[str], count: bool = True) -> list[str]:
    """A titled list, its length in the title if `count`; "none" when empty."""
    if not items:
        return [f"{title}: none"]
    return [f"{title} ({len(items)}):" if count else f"{title}:", *(f"  {item}" for item in items)]


def _median(values: list[int]) -> int:
    return int(statistics.median_low(values))

"""What `pipeline.data.layouts` reads a dataset into (`Listing`, one `Sample` per image), and the rules its classes
must follow: two at least, each with images, the same in every part; `classes` from params fixes their order or
takes a subset. Once the images are read (`pipeline.data.ingest`), a class (of a part) whose every image is to be
skipped is refused too (`refuse_unusable`), naming where the layout keeps it: a model cannot learn a class it never
sees."""

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipeline.core.errors import PipelineError

PART_ORDER = {None: 0, "train": 0, "val": 1, "test": 2}
OTHER_CLASSES = "images of classes not in `classes`"
SHOWN = 8  # paths named in an error before "and N more"
# What to do with a class whose images are all unusable, besides replacing them, by layout.
REMOVAL = {"names": "remove the class's files", "csv": "remove the class's rows"}


@dataclass(frozen=True)
class Sample:
    """One image: its path in the tree, its class, and its part (train, val or test; None for one pool)."""

    path: str
    cls: str
    part: str | None = None


@dataclass(frozen=True)
class Listing:
    """A dataset read in its layout: the samples in a stable order (part, class, path in natural order: `cat.2.jpg`
    before `cat.10.jpg`), the classes in label order, the files left out, counted by reason, and the layout's root
    in the tree (`PetImages/`; for csv, the manifest)."""

    layout: str
    samples: list[Sample]
    classes: tuple[str, ...]
    ignored: dict[str, int]
    root: str = ""

    def home(self, sample: Sample) -> str:
        """Where the layout keeps `sample`'s class, relative to the tree: its class folder (class and split folders),
        the folder of the `<class>.<n>` files (names), the manifest (csv)."""
        if self.layout == "class_folders":
            return f"{self.root}{sample.cls}"
        if self.layout == "split_folders":
            return f"{self.root}{sample.path[len(self.root):].split('/', 1)[0]}/{sample.cls}"
        return self.root.rstrip("/")


def settle_classes(
    layout: str,
    samples: list[Sample],
    seen: dict[str | None, set[str]],
    classes: list[str] | None,
    ignored: Counter,
    key: str,
    where: str,
) -> Listing:
    """The listing of `samples`, once their classes pass the rules.

    `seen` holds, per part, every class folder found, images or not (so an empty class is named); `classes` is the
    params' choice (None: every class of the train part, or of the one pool, sorted). `key` and `where` (the tree)
    head every error.
    """
    main = "train" if "train" in seen else None
    chosen = tuple(sorted(seen[main])) if classes is None else _chosen(classes, seen[main], key, where)
    for part in (part for part in seen if part != main):
        _same_classes(part, seen[part], chosen, classes is None, key, where)
    counts = Counter((sample.part, sample.cls) for sample in samples)
    empty = [f"{part}/{cls}" if part else cls for part in seen for cls in chosen if not counts[part, cls]]
    if empty:
        raise PipelineError(
            f"{key}: {where}: no images in the class folder {', '.join(empty)}; add images (.jpg, .jpeg, .png, "
            ".bmp, .webp) or remove the folder"
            + ("" if classes is None else ", or leave the class out of `classes`")
        )
    if not samples:
        raise PipelineError(f"{key}: {where} lists no images; give it images of two classes at least")
    if len(chosen) < 2:
        raise PipelineError(
            f"{key}: {where} has one class ({', '.join(chosen)}); a classifier needs two at least: "
            + ("add another class's images" if classes is None else "list two or more in `classes`")
        )
    index = {cls: position for position, cls in enumerate(chosen)}
    kept = [sample for sample in samples if sample.cls in index]
    if len(kept) < len(samples):
        ignored[OTHER_CLASSES] += len(samples) - len(kept)
    kept.sort(key=lambda sample: (PART_ORDER[sample.part], index[sample.cls], natural_key(sample.path)))
    return Listing(layout, kept, chosen, dict(sorted(ignored.items())))


def natural_key(path: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders the digit runs of `path` by their value (`cat.2.jpg` before `cat.10.jpg`), then by
    the path itself so that `01` and `1` keep a fixed order."""
    runs = tuple((0, int(run)) if run.isdigit() else (1, run) for run in re.split(r"(\d+)", path) if run)
    return (*runs, (1, path))


def _chosen(classes: list[str], found: set[str], key: str, where: str) -> tuple[str, ...]:
    """The classes the params list, once each is a class of the dataset, listed once."""
    repeated = sorted(cls for cls, count in Counter(classes).items() if count > 1)
    if repeated:
        raise PipelineError(f"{key}.classes: lists {', '.join(repeated)} more than once; list each class once")
    unknown = [cls for cls in classes if cls not in found]
    if unknown:
        raise PipelineError(
            f"{key}.classes: {', '.join(map(repr, unknown))} "
            f"{'is not a class' if len(unknown) == 1 else 'are not classes'} of {where}; its classes are "
            f"{', '.join(sorted(found)) or 'none (no images where its layout puts them)'}"
        )
    return tuple(classes)


def _same_classes(part: str, found: set[str], chosen: tuple[str, ...], every: bool, key: str, where: str) -> None:
    """A val or test part must have the train part's classes (the chosen ones, when `classes` takes a subset), and
    no others unless `classes` leaves them out."""
    lacks = sorted(set(chosen) - found)
    extra = sorted(found - set(chosen)) if every else []
    if lacks or extra:
        differences = ([f"{part} lacks {', '.join(lacks)}"] if lacks else []) + (
            [f"{part} has {', '.join(extra)}, which train lacks"] if extra else []
        )
        raise PipelineError(
            f"{key}: {where}: the {part} classes differ from the train classes ({'; '.join(differences)}); give "
            "every part the same class folders"
        )


def refuse_unusable(listing: Listing, skips: Mapping[str, str], key: str, entry: Callable[[str], str]) -> None:
    """Stop on every class (of each part) whose images are all to be skipped, `skips` giving why by path ("" or
    none: usable). The error names each one where `entry` (the tree's) says its home is, and the reasons counted."""
    unusable = unusable_classes(listing, skips)
    if not unusable:
        return
    homes = {(sample.part, sample.cls): listing.home(sample) for sample in listing.samples}
    found = [
        f"{entry(homes[part, cls])}: no usable image of class {cls!r} ({skip_counts(reasons)})"
        for (part, cls), reasons in unusable.items()
    ]
    removal = REMOVAL.get(listing.layout, "remove the folder")
    raise PipelineError(f"{key}: {'; '.join(found)}; replace them or {removal}")


def unusable_classes(listing: Listing, skips: Mapping[str, str]) -> dict[tuple[str | None, str], Counter]:
    """The (part, class) pairs whose every image has a reason in `skips`, with the gist of each reason counted, in
    the listing's order."""
    reasons: dict[tuple[str | None, str], Counter] = {}
    usable = set()
    for sample in listing.samples:
        why = skips.get(sample.path, "")
        if why:
            reasons.setdefault((sample.part, sample.cls), Counter())[gist(why)] += 1
        else:
            usable.add((sample.part, sample.cls))
    return {group: counted for group, counted in reasons.items() if group not in usable}


def skip_counts(reasons: Counter) -> str:
    """`3 files, all skipped: 2 not a decodable image, 1 empty file`, most frequent reason first."""
    total = sum(reasons.values())
    counted = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    return f"{total} file{'s' if total > 1 else ''}, {'all ' if total > 1 else ''}skipped: {counted}"


def gist(reason: str) -> str:
    """A skip reason without its advice (`pipeline.data.images.refusal` puts it after a semicolon)."""
    return reason.split(";", 1)[0]


def few(names: list[str]) -> str:
    """The first `SHOWN` of `names`, and how many more."""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more

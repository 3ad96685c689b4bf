"""The model card, `models/<model>.card.md`: what the model is, how well it does, the input it expects and its
limits, in one page a reader can take in without opening a metrics file.

Pure functions of what the evaluate stage has in hand: the model file's provenance (architecture and args, the
resolved `train` and `aug` blocks, seed, kept epoch, dataset and classes), the test figures, the preprocessed
dataset's meta.json, the images per split and class, the dataset's source and the git commit. The params shown are
those that differ from the code's defaults, so the page says what was chosen, not everything there is.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.analysis.markdown import cell, table
from pipeline.config.archs import ARCH_ARGS
from pipeline.data.store import DatasetMeta
from pipeline.models.file import SavedModel

TOP_CONFUSIONS = 5
RESIZE = {
    "squash": "squashed to the square (stretched: its aspect ratio is not kept)",
    "crop": "cut to the centred square of its short side (the long side's ends are dropped), then resized",
    "pad": "padded to a square with black bars (the whole image is kept), then resized",
}
COLOR = {
    "gray": "grayscale, 1 channel (a colour image is converted to gray)",
    "rgb": "RGB, 3 channels (a grayscale image becomes three equal channels)",
}
TTA = {
    "none": "no test-time augmentation",
    "flip": "test-time augmentation `flip`: each image's class probabilities are the mean over it and its mirror",
    "flip_shift": (
        "test-time augmentation `flip_shift`: each image's class probabilities are the mean over 6 views, it and its "
        "mirror, each as it is and moved one pixel down-right and one up-left"
    ),
}
MONITOR = {"val_loss": "the lowest validation loss", "val_acc": "the highest validation accuracy"}


@dataclass(frozen=True)
class CardFacts:
    """Everything the card says, gathered by the evaluate stage.

    `saved`: the model file's provenance (`load_model`'s second value); `metrics`: test.json; `per_class`: precision,
    recall, F1 and support by class name; `confusion`: test counts, true class by row, predicted by column; `meta`:
    the preprocessed dataset's meta.json; `counts`: images per split and class, as the model saw them; `source`:
    `data.<dataset>.source` (None: not known); `commit`: the code's version, as the evaluate stage's `git_commit`
    words it; `audit`: the dataset's audit summary (None: not audited).
    """

    name: str
    saved: SavedModel
    metrics: dict[str, Any]
    per_class: dict[str, dict[str, float]]
    confusion: np.ndarray
    meta: DatasetMeta
    counts: dict[str, dict[str, int]]
    source: str | None
    commit: str
    audit: dict[str, Any] | None = None


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """The confusion matrix as counts (classes, classes): row = true class, column = predicted class."""
    flat = np.asarray(actual, np.int64) * classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    """Samples per class name, every class listed (0 for one absent)."""
    return dict(zip(classes, np.bincount(labels, minlength=len(classes)).tolist(), strict=True))


def worst_confusions(confusion: np.ndarray, classes: list[str], top: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
    """The `top` most frequent mistakes (`actual` class, `predicted` class, `count`, `share` of the actual class's
    samples), most first; ties by the larger share, then by label order. Pairs never confused are left out. The
    card's table and evaluate's confused.json (fastai's most_confused)."""
    support = confusion.sum(axis=1)
    pairs = []
    for t, p in zip(*np.nonzero(confusion), strict=True):  # row by row: label order
        if t != p:
            count = int(confusion[t, p])
            pairs.append({"actual": classes[t], "predicted": classes[p], "count": count, "share": float(count / support[t])})
    return sorted(pairs, key=lambda pair: (-pair["count"], -pair["share"]))[:top]


def model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    sections = [
        [f"# Model card: {facts.name}"],
        _what_it_is(facts),
        _how_well(facts),
        _input(facts),
        _limits(facts),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _what_it_is(facts: CardFacts) -> list[str]:
    saved, counts = facts.saved, facts.counts
    arch = saved.arch
    splits = ", ".join(f"{name} {sum(counts[name].values())}" for name in ("train", "val", "test"))
    lines = [
        "## What it is",
        "",
        f"- **Model**: `{facts.name}`, architecture `{arch}`: {_first_sentence(ARCH_ARGS[arch].__doc__)}",
        (
            f"- **Dataset**: `{saved.dataset}` ({_source(facts.source)}), {len(saved.classes)} classes; "
            f"{_noun(facts.meta)} per split: {splits}"
        ),
        (
            f"- **Preprocessing**: {_preprocessing(facts.meta)} (`preprocess.{saved.dataset}`; details below, "
            "under \"The input it expects\")"
        ),
        f"- **Seed**: {saved.seed}",
        f"- **Code** (when evaluate ran): {facts.commit}",
        f"- **Weights kept**: {_kept(saved)}",
        "",
    ]
    differing = saved.non_default_params()
    if not differing:
        return [*lines, "Every param is at its default."]
    rows = [[f"`{key}`", f"`{cell(value)}`", f"`{cell(default)}`"] for key, value, default in differing]
    return [
        *lines,
        f"Params that differ from the defaults (the resolved values; `arch.*` are the `{arch}` architecture's own):",
        "",
        *table(["param", "value", "default"], rows),
    ]


def _how_well(facts: CardFacts) -> list[str]:
    metrics, classes, noun = facts.metrics, facts.saved.classes, _noun(facts.meta)
    figures = (metrics["accuracy"], metrics["macro"]["f1"], metrics["ece"], metrics["loss"])
    per_class = [_class_row(name, facts.per_class[name]) for name in classes]
    lines = [
        "## How well it does",
        "",
        f"On the test split ({metrics['samples']} {noun}, never used for any choice; {TTA[metrics['tta']]}):",
        "",
        *table(["accuracy", "macro F1", "calibration error (ECE)", "loss"], [[_fixed(value) for value in figures]]),
        "",
        *_calibration(metrics.get("calibration")),
        *table(["class", "precision", "recall", "F1", "support"], per_class),
        "",
    ]
    worst = worst_confusions(facts.confusion, classes)
    if not worst:
        return [*lines, "No test sample is misclassified."]
    rows = [[f"`{p['actual']}`", f"`{p['predicted']}`", str(p["count"]), f"{p['share']:.1%}"] for p in worst]
    return [
        *lines,
        f"The most frequent confusions (at most {TOP_CONFUSIONS}; share: of the true class's test {noun}):",
        "",
        *table(["true class", "predicted as", "count", "share"], rows),
    ]


def _calibration(calibration: dict[str, Any] | None) -> list[str]:
    """The temperature and the test figures before and after it (evaluate's `calibration`), as a table."""
    if calibration is None:
        return []
    temperature = calibration["temperature"]
    if not calibration["applied"]:
        return [
            (
                f"The probabilities are as trained: the temperature fitted on the validation split "
                f"({calibration['fitted_temperature']:.3f}) did not carry over to validation images held out from its "
                "fit, or `evaluate.calibrate` is off."
            ),
            "",
        ]
    rows = [
        [name, *(_fixed(calibration[when][key]) for key in ("accuracy", "nll", "ece"))]
        for when, name in (("before", "as trained"), ("after", f"calibrated (temperature {temperature:.3f})"))
    ]
    return [
        (
            "Its probabilities are calibrated: the logits are divided by a temperature fitted on the validation split "
            "(`evaluate.calibrate`), which `pipeline predict`, `pipeline serve` and the ONNX file apply. On the test "
            "split:"
        ),
        "",
        *table(["probabilities", "accuracy", "NLL", "ECE"], rows),
        "",
    ]


def _input(facts: CardFacts) -> list[str]:
    meta, classes = facts.meta, facts.saved.classes
    labels = ", ".join(f"{label} `{name}`" for label, name in enumerate(classes))
    call = f"Call it with `uv run pipeline predict {facts.name} PATH`, which prepares the input as above."
    if meta.is_table:
        names = ", ".join(f"`{name}`" for name in meta.features)
        shape = f"- **A row of {len(meta.features)} features**, in this order: {names}"
        call = f"`pipeline predict` takes images; run this table model on rows through its export, `models/{facts.name}.onnx`."
    else:
        shape = (
            f"- **An image** of any size, made {meta.size}x{meta.size} pixels, {COLOR[meta.color]}; "
            f"a non-square image is {RESIZE[meta.resize]}"
        )
    return [
        "## The input it expects",
        "",
        shape,
        f"- **Normalisation**: {_normalisation(meta)}",
        f"- **Classes**, in label order: {labels}",
        "",
        call,
    ]


def _limits(facts: CardFacts) -> list[str]:
    saved, counts, noun = facts.saved, facts.counts, _noun(facts.meta)
    trained = ", ".join(f"`{name}` {count}" for name, count in counts["train"].items())
    tested = facts.metrics["samples"]
    accuracy = facts.metrics["accuracy"]
    margin = 1.96 * np.sqrt(accuracy * (1 - accuracy) / tested) if tested else float("nan")
    lines = [
        "## Limits",
        "",
        (
            f"- Trained on {sum(counts['train'].values())} {noun} of {len(counts['train'])} classes ({trained}); "
            "it knows no other class: an input of anything else still gets one of these."
        ),
        (
            f"- The weights are those of epoch {saved.epoch} of {saved.train['epochs']}, chosen on the "
            f"validation split ({sum(counts['val'].values())} {noun}); the test split played no part in the choice."
        ),
        (
            f"- The test split has {tested} {noun}: its accuracy is uncertain by about ±{margin:.3f} "
            "(95% interval, normal approximation)."
        ),
    ]
    lines.append(_audit_line(saved.dataset, facts.audit))
    if facts.source == "sample":
        lines.append(
            f"- **The sample is synthetic**: `data.{saved.dataset}.source` is `sample`, generated images (shapes "
            "over noise), so these figures say the pipeline works, not how the model does on real photos."
        )
    return lines


def _audit_line(dataset: str, audit: dict[str, Any] | None) -> str:
    """Whether the data was audited (`audit@<dataset>`) and what was found."""
    if audit is None:
        return (
            f"- **The data was not audited**: no `audit.{dataset}` block, so near-duplicates across splits (an "
            "inflated test figure), wrong labels and outliers were not looked for (docs/how-to/audit.md)."
        )
    found = ", ".join(
        f"{audit.get(kind, {}).get('total', 0)} {words}"
        for kind, words in (("near_duplicates", "near-duplicate pairs"), ("label_issues", "likely label errors"),
                            ("outliers", "outliers"))
    )
    return f"- The data was audited (`audit@{dataset}`): {found} found; see `metrics/{dataset}/audit/`."


def _class_row(name: str, figures: dict[str, float]) -> list[str]:
    return [f"`{name}`", *(_fixed(figures[key]) for key in ("precision", "recall", "f1")), str(figures["support"])]


def _preprocessing(meta: DatasetMeta) -> str:
    normalize = f"normalize `{cell(meta.normalize)}`"
    if meta.is_table:
        return f"{len(meta.features)} features a row, {normalize}"
    return f"size {meta.size}, color `{meta.color}`, resize `{meta.resize}`, {normalize}"


def _normalisation(meta: DatasetMeta) -> str:
    scale = "" if meta.is_table else "pixel values scaled to [0, 1], "
    if not meta.normalize:
        return f"{scale}not standardised"
    per = "feature" if meta.is_table else "channel"
    return (
        f"{scale}standardised per {per} with the training split's mean {_numbers(meta.mean)} "
        f"and std {_numbers(meta.std)}"
    )


def _kept(saved: SavedModel) -> str:
    epochs = saved.train["epochs"]
    if saved.kept == "last":
        return f"epoch {saved.epoch} of {epochs}, the last (`train.keep: last`)"
    monitor = saved.train["monitor"]
    return (
        f"epoch {saved.epoch} of {epochs}, the one with {MONITOR[monitor]} "
        f"(`train.keep: best`, `train.monitor: {monitor}`)"
    )


def _source(source: str | None) -> str:
    return f"source `{source}`" if source else "source not known: evaluate was given no params"


def _noun(meta: DatasetMeta) -> str:
    return "rows" if meta.is_table else "images"


def _first_sentence(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat.split(". ")[0].rstrip(".") + "." if flat else ""


def _numbers(values: list[float]) -> str:
    return "(" + ", ".join(f"{value:.4g}" for value in values) + ")"


def _fixed(value: float) -> str:
    return f"{value:.3f}"

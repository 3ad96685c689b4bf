"""How predictions are shown: one table for the terminal and the CSV (`--out`), the skipped files with their reasons,
and the score against labels.

The table's columns: `path`, `class` (the most probable class) and `probability` (its probability), then for
`--top K` the runners-up `class_2`, `probability_2`, ... `class_K`, `probability_K`, and with `--labels` the true
class, `label` (empty for an image without one). The CSV has the same columns, probabilities to 6 decimals.
"""

from pathlib import Path

import pandas as pd

from pipeline.core.atomic import write_text
from pipeline.inference.predict import Predictions, Score, ranked


def table(predictions: Predictions, top: int, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per predicted image: path, class and probability, the runners-up of the top `top`, the label."""
    rows = []
    for prediction in predictions.predicted:
        (best, chance), *others = ranked(prediction.probabilities, predictions.classes, top)
        row = {"path": prediction.name, "class": best, "probability": chance}
        for rank, (cls, probability) in enumerate(others, start=2):
            row |= {f"class_{rank}": cls, f"probability_{rank}": probability}
        if labels is not None:
            row["label"] = labels.get(prediction.key, "")
        rows.append(row)
    columns = ["path", "class", "probability", *[f"{kind}_{rank}" for rank in range(2, top + 1) for kind in
                                                   ("class", "probability")]]
    return pd.DataFrame(rows, columns=columns + (["label"] if labels is not None else []))


def write_csv(path: Path, rows: pd.DataFrame) -> None:
    """The table as a CSV file, written atomically."""
    write_text(path, rows.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def predictions_text(predictions: Predictions, rows: pd.DataFrame, ignored: int = 0) -> str:
    """The table for the terminal (probabilities to 3 decimals), then how many images were predicted, the skipped
    files with their reasons and how many files were ignored."""
    lines = [_aligned(rows)] if len(rows) else []
    lines.append(f"predicted {_count(len(rows), 'image')}")
    if predictions.skipped:
        lines.append(f"skipped {_count(len(predictions.skipped), 'file')} (not usable images):")
        lines += [f"  {name}: {reason}" for name, reason in predictions.skipped]
    if ignored:
        lines.append(f"ignored {_count(ignored, 'file')} in the folders and archives (not images, by their names)")
    return "\n".join(lines) + "\n"


def calibration_text(temperature: float) -> str:
    """The line that says which probabilities were printed: calibrated by evaluate's temperature, or as trained."""
    if temperature == 1.0:
        return "probabilities as trained (no calibration applied: the model card says why)\n"
    return f"probabilities calibrated: logits divided by {temperature:.3f}, fitted on the validation split by evaluate\n"


def _aligned(rows: pd.DataFrame) -> str:
    """The rows as text columns two spaces apart, text left-aligned and numbers right-aligned."""
    numbers = [rows[column].dtype.kind == "f" for column in rows.columns]
    cells = [list(map(str, rows.columns))] + [
        [f"{value:.3f}" if number else str(value) for value, number in zip(row, numbers, strict=True)]
        for row in rows.itertuples(index=False)
    ]
    widths = [max(len(row[at]) for row in cells) for at in range(len(numbers))]
    return "\n".join(
        "  ".join(cell.rjust(width) if number else cell.ljust(width) for cell, width, number in
                  zip(row, widths, numbers, strict=True)).rstrip()
        for row in cells
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def render_score(score: Score, classes: list[str]) -> str:
    """Accuracy on the labelled images and the confusion counts, rows the actual class, columns the predicted one."""
    unlabelled = f"; {score.unlabelled} predicted images have no label" if score.unlabelled else ""
    confusion = pd.DataFrame(
        score.confusion, index=pd.Index(classes, name="actual"), columns=pd.Index(classes, name="predicted")
    )
    return (
        f"accuracy {score.accuracy:.3f} on {score.labelled} labelled images{unlabelled}\n"
        f"confusion counts (rows: actual class, columns: predicted class):\n{confusion.to_string()}\n"
    )

"""What the training tests read back from a run: the logged curves, the metric files and the saved weights."""

import torch

from pipeline.core.paths import Paths

CURVES = ("train/loss", "train/acc", "val/loss", "val/acc")


def curve(paths: Paths, name: str, model: str = "catsdogs_cnn") -> list[tuple[int, float]]:
    """One logged per-epoch figure of a model's training run, as (epoch, value) rows."""
    lines = (paths.train_dir(model) / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
    assert lines[0].split("\t")[0] == "step"
    return [(int(step), float(value)) for step, value in (line.split("\t")[:2] for line in lines[1:])]


def outputs(paths: Paths) -> dict[str, bytes]:
    """The bytes of the training run's metrics and curves, to compare two runs."""
    folder = paths.train_dir("catsdogs_cnn")
    files = [folder / "metrics.json", *(folder / "plots" / "metrics" / f"{name}.tsv" for name in CURVES)]
    return {str(path.relative_to(folder)): path.read_bytes() for path in files}


def weights(paths: Paths) -> dict[str, torch.Tensor]:
    """The saved model's weights."""
    return torch.load(paths.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]

"""What the training tests read back from a run: the logged curves, the metric files and the saved weights."""

import pytest
import torch

from pipeline.core.paths import Paths
from pipeline.stages.train import train

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


class Killed(Exception):
    """Stands in for the process dying mid-run."""


def train_killed_in_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int, params, paths: Paths) -> None:
    """Train until the given epoch is nearly done, then die as a killed process would (no cleanup, no model)."""
    import pipeline.stages.train as stage

    real, calls = stage.measure, []

    def measure(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise Killed
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stage, "measure", measure)
        with pytest.raises(Killed):
            train("catsdogs_cnn", params, paths)

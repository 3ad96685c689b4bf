"""A whole split scored in eval mode: what validation reports each epoch and what evaluate reports on test."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.analysis.diagnostics import confidence_figures
from pipeline.core.runtime import (
    Normalization,
    predict,
)
from pipeline.data.store import SplitArrays
from pipeline.models.outputs import loss, probabilities


@dataclass(frozen=True)
class SplitScores:
    """A whole split scored in eval mode: loss, accuracy and the true-class confidence figures."""

    loss: float
    accuracy: float
    confidence: dict[str, float]



def measure(
    model: nn.Module,
    split: SplitArrays,
    batch_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
    mixed: bool = False,
) -> SplitScores:
    """Loss, accuracy and true-class confidence of the model in eval mode on a whole split."""
    logits = predict(model, split.inputs, batch_size, device, normalization, mixed)
    predicted = probabilities(logits).numpy()
    accuracy = float(np.mean(predicted.argmax(1) == split.labels))
    confidence = confidence_figures(predicted, split.labels)
    return SplitScores(loss(logits, torch.from_numpy(split.labels)).item(), accuracy, confidence)

"""A whole split scored in eval mode: what validation reports each epoch and what evaluate reports on test.

Under torchrun each process scores every `world`-th sample and the predictions are gathered, so validation costs
each process 1/world of the split and every sample counts once.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.analysis.diagnostics import confidence_figures
from pipeline.core.distributed import Shard, gathered_uneven, my_share
from pipeline.core.runtime import Normalization
from pipeline.models.forward import predict_logits
from pipeline.data.store import SplitArrays
from pipeline.models.outputs import loss, probabilities


@dataclass(frozen=True)
class SplitScores:
    """A whole split scored in eval mode: loss, accuracy, the true-class confidence figures, and the class
    probabilities with the labels they belong to (in the order they were gathered)."""

    loss: float
    accuracy: float
    confidence: dict[str, float]
    probabilities: np.ndarray
    labels: np.ndarray


def measure(
    model: nn.Module,
    split: SplitArrays,
    batch_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
    mixed: bool = False,
    shard: Shard = Shard(),
) -> SplitScores:
    """Loss, accuracy and true-class confidence of the model in eval mode on a whole split, shared out between the
    processes of `shard`."""
    part = my_share(len(split.labels), shard)
    logits = predict_logits(model, split.inputs[part], batch_size, device, normalization, mixed)
    labels = torch.from_numpy(split.labels[part])
    if shard.world > 1:  # a process scoring alone (rank 0's BatchNorm check) must not wait for the others
        logits, labels = gathered_uneven(logits.to(device)).cpu(), gathered_uneven(labels.to(device)).cpu()
    return scores(logits, labels)


def scores(logits: torch.Tensor, labels: torch.Tensor) -> SplitScores:
    """The figures of a split from the model's logits for it."""
    predicted = probabilities(logits).numpy()
    actual = labels.numpy()
    accuracy = float(np.mean(predicted.argmax(1) == actual))
    return SplitScores(loss(logits, labels).item(), accuracy, confidence_figures(predicted, actual), predicted, actual)

"""A model's outputs: one sigmoid logit for two classes, else one logit per class; the loss and the class
probabilities for either kind."""

import torch
import torch.nn.functional as F


def output_count(num_classes: int) -> int:
    """One sigmoid output for two classes, else one logit per class."""
    return 1 if num_classes == 2 else num_classes


def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy (one output) or cross-entropy (one logit per class)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) for either kind of output."""
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)

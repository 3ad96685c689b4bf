"""A model's outputs: one sigmoid logit for two classes, else one logit per class; the loss and the class
probabilities for either kind."""

import torch
import torch.nn.functional as F


def output_count(num_classes: int) -> int:
    """One sigmoid output for two classes, else one logit per class."""
    return 1 if num_classes == 2 else num_classes


def loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy (one output) or cross-entropy (one logit per class); with `class_weights`, each
    sample's loss weighs its class's weight and the mean is over the weights, as PyTorch's weighted cross-entropy."""
    if logits.shape[1] > 1:
        return F.cross_entropy(logits, labels, weight=class_weights)
    if class_weights is None:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype))
    weights = class_weights[labels]
    each = F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype), reduction="none")
    return (each * weights).sum() / weights.sum()


def inverse_frequency(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class weights n / (classes * n_class), so that every class weighs as much in the loss as a balanced split's
    would (`train.class_weights: auto`); a class absent from `labels` gets weight 0."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), 0.0)
    return weights.float()


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) for either kind of output."""
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)

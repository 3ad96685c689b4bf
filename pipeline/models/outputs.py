"""A model's outputs: one sigmoid logit for two classes, else one logit per class; the loss and the class
probabilities for either kind."""

import torch
import torch.nn.functional as F


def output_count(num_classes: int) -> int:
    """One sigmoid output for two classes, else one logit per class."""
    return 1 if num_classes == 2 else num_classes


def loss(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None, smoothing: float = 0.0
) -> torch.Tensor:
    """Mean binary cross-entropy (one output) or cross-entropy (one logit per class).

    `targets` are class indices, or soft targets (`pipeline.training.mixing`): class probabilities (N, classes), or
    the positive class's probability (N,) for one output. `smoothing` (`train.label_smoothing`, training only) takes
    each target t to t * (1 - e) + e / classes (torch's `label_smoothing`; y * (1 - e) + e / 2 for one output).
    With `class_weights`, each sample's loss weighs its class's weight (a soft target's: the weights' mix by its
    unsmoothed probabilities) and the mean is over the weights, as PyTorch's weighted cross-entropy with indices."""
    if logits.shape[1] > 1:
        if class_weights is None or not targets.is_floating_point():
            return F.cross_entropy(logits, targets, weight=class_weights, label_smoothing=smoothing)
        each = F.cross_entropy(logits, targets, weight=class_weights, label_smoothing=smoothing, reduction="none")
        return each.sum() / (targets @ class_weights).sum()
    truth = targets.to(logits.dtype)
    smoothed = truth * (1 - smoothing) + smoothing / 2 if smoothing else truth
    if class_weights is None:
        return F.binary_cross_entropy_with_logits(logits[:, 0], smoothed)
    weights = class_weights[1] * truth + class_weights[0] * (1 - truth)
    each = F.binary_cross_entropy_with_logits(logits[:, 0], smoothed, reduction="none")
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

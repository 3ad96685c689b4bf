"""A model's raw outputs over a whole array of preprocessed inputs, batch by batch: what validation, evaluation,
export's parity check and the predict command's PyTorch backend all run."""

import numpy as np
import torch
from torch import nn

from pipeline.core.runtime import Normalization, batches, mixed_precision



@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    device: torch.device,
    normalization: Normalization | None = None,
    mixed: bool = False,
) -> torch.Tensor:
    """The model's logits for every image, in eval mode, on the CPU (in bf16 on a CUDA device if `mixed`)."""
    model.eval()
    dummy = np.zeros(len(images), np.int64)
    with mixed_precision(device, mixed):
        outputs = [model(x.to(device, non_blocking=True)) for x, _ in batches(images, dummy, batch_size, normalization)]
    return torch.cat(outputs).float().cpu()

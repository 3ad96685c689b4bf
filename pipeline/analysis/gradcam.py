"""Grad-CAM (Selvaraju et al., 2017): where in an image a convolutional model looked for the class it scores.

The last convolution's feature maps are weighed by the mean gradient of the class score over each map, summed,
clipped at zero, scaled up to the image and to [0, 1]. A two-class model's one logit scores class 1 as it is and
class 0 negated. Written with torch's autograd in a few lines rather than with `pytorch-grad-cam` (PyPI `grad-cam`):
that library brings OpenCV for its resizing and overlays, and would need a custom target for the one-logit models;
the maths is the twenty lines below. A model without convolutions (an MLP) has no map: `heatmaps` gives None.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.runtime import Normalization, to_tensor


def last_conv(model: nn.Module) -> nn.Module | None:
    """The model's last 2-D convolution in module order (the layer Grad-CAM reads), or None if it has none."""
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    return convs[-1] if convs else None


def heatmaps(
    model: nn.Module, images: np.ndarray, classes: np.ndarray, normalization: Normalization | None
) -> np.ndarray | None:
    """Grad-CAM maps (N, H, W) in [0, 1], on the host, of uint8 NHWC `images` for each image's class in `classes`,
    computed in eval mode where the model is; None for a model without a convolution (see the module's docstring)."""
    layer = last_conv(model)
    if layer is None or not len(images):
        return None
    model.eval()
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        inputs = to_tensor(images, normalization).to(device).requires_grad_(True)
        scores = _class_scores(model(inputs), torch.as_tensor(classes, dtype=torch.long))
        (gradients,) = torch.autograd.grad(scores.sum(), captured[0])
    finally:
        handle.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cams = F.relu((weights * captured[0]).sum(dim=1, keepdim=True)).detach()
    cams = F.interpolate(cams.float(), size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0].cpu()
    peak = cams.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cams / peak).numpy()


def _class_scores(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Each row's score of its class: the class's logit, or for one logit (two classes) +logit / -logit."""
    if logits.shape[1] == 1:
        return torch.where(classes == 1, logits[:, 0], -logits[:, 0])
    return logits.gather(1, classes[:, None])[:, 0]

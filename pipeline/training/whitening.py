"""airbench94's whitening layer (`train.whiten`, `train.whiten_bias_epochs`): the model's first conv set, before
training, to whiten the training images' patches, and frozen.

The first conv's kernel (k x k over c channels) sees patches of c*k*k values. Their covariance over a sample of the
training images (normalised as training normalises them) has eigenvectors; each scaled by 1 / sqrt(its eigenvalue
+ eps) maps a patch to one decorrelated, unit-variance coordinate. The conv's 2*c*k*k filters are those, and their
negatives (so that the GELU after it keeps both signs). Its weights never train; its bias trains for the first
`whiten_bias_epochs` epochs (all of them when null), then freezes too.
"""

import torch
from torch import nn

from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.core.runtime import Normalization, model_input
from pipeline.data.store import SplitArrays

WHITEN_SAMPLES = 5000  # airbench's: the first 5,000 training images (the split is shuffled)
EPS = 5e-4  # airbench's, added to each eigenvalue


def whitening_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first layer: a conv with 2 x in-channels x k x k filters, or a PipelineError naming the key."""
    first = next((module for module in model.modules() if isinstance(module, nn.Conv2d | nn.Linear)), None)
    if not isinstance(first, nn.Conv2d):
        raise PipelineError("train.whiten: the model's first layer is not a conv; set whiten: false")
    channels, (height, width) = first.in_channels, first.kernel_size
    if first.out_channels != 2 * channels * height * width or first.groups != 1:
        raise PipelineError(
            f"train.whiten: the model's first conv has {first.out_channels} filters of {channels}x{height}x{width}; "
            f"a whitening layer needs 2 x {channels * height * width} = {2 * channels * height * width} "
            "(e.g. `stem` of airbench); set whiten: false"
        )
    return first


@torch.no_grad()
def whiten_first_conv(model: nn.Module, train_set: SplitArrays, normalization: Normalization | None) -> None:
    """Set the model's first conv to whiten the patches of the first WHITEN_SAMPLES training images, and freeze its
    weights (its bias stays trainable; see `whitening_bias_epoch`)."""
    conv = whitening_conv(model)
    device = conv.weight.device
    images = model_input(torch.tensor(train_set.inputs[:WHITEN_SAMPLES], device=device), normalization)  # a copy
    patches = _patches(images.float(), conv.kernel_size)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
    filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + EPS)[:, None]).flip(0).float()
    filters = filters.reshape(-1, conv.in_channels, *conv.kernel_size)
    conv.weight.copy_(torch.cat([filters, -filters]))
    conv.weight.requires_grad_(False)
    if conv.bias is not None:
        conv.bias.zero_()


def _patches(images: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Every k x k patch of the images (N, C, H, W), flattened in the conv weight's (C, kh, kw) order."""
    height, width = kernel
    windows = images.unfold(2, height, 1).unfold(3, width, 1)  # N, C, H', W', kh, kw
    return windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * height * width)


def whitening_bias_epoch(model: nn.Module, train_params: TrainParams, epoch: int) -> None:
    """Before training epoch `epoch` (from 1): the whitening layer's bias trains while `epoch` is within
    `whiten_bias_epochs` (always when null) and is frozen after; nothing without `train.whiten`."""
    if not train_params.whiten:
        return
    bias = whitening_conv(model).bias
    if bias is not None:
        limit = train_params.whiten_bias_epochs
        bias.requires_grad_(limit is None or epoch <= limit)

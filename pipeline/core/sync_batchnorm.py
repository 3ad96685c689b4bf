"""BatchNorm over the global batch when several processes train one model (DistributedDataParallel).

Each process sees its share of every batch; plain BatchNorm would normalise with the share's own statistics and
keep running averages that differ between processes (and only rank 0's are saved). On GPUs torch's
`nn.SyncBatchNorm` does it; it refuses CPU tensors, so on the CPU (gloo) `GlobalBatchNorm` does the same with
differentiable all-reduces: the mean and variance of the whole batch, identical running statistics everywhere.
"""

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

BATCHNORM = nn.modules.batchnorm._BatchNorm


class GlobalBatchNorm(BATCHNORM):
    """BatchNorm whose training statistics are those of the batch across every process of the run."""

    def _check_input_dim(self, inputs: torch.Tensor) -> None:
        if inputs.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {inputs.dim()}D input)")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalise with the global batch's mean and (biased) variance in training; as BatchNorm otherwise."""
        if not (self.training and dist.is_initialized()):
            return super().forward(inputs)
        axes = [0, *range(2, inputs.dim())]
        shape = [1, -1] + [1] * (inputs.dim() - 2)
        count = dist_fn.all_reduce(inputs.new_tensor([inputs.numel() / inputs.shape[1]]))
        mean = dist_fn.all_reduce(inputs.sum(axes)) / count
        centred = inputs - mean.view(shape)
        variance = dist_fn.all_reduce(centred.square().sum(axes)) / count
        self._update_running(mean.detach(), variance.detach(), count.item())
        normalised = centred / torch.sqrt(variance.view(shape) + self.eps)
        if self.affine:
            normalised = normalised * self.weight.view(shape) + self.bias.view(shape)
        return normalised

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, variance: torch.Tensor, count: float) -> None:
        """Move the running averages as BatchNorm does (unbiased variance; momentum None: cumulative average)."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        momentum = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(variance * count / max(count - 1, 1), momentum)


def synchronised(model: nn.Module, device: torch.device) -> nn.Module:
    """The model with every BatchNorm layer computing statistics over the global batch: torch's SyncBatchNorm on
    a GPU, `GlobalBatchNorm` on the CPU. Parameters and buffers are shared with the layers they replace, so an
    optimizer built on the model keeps working."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, BATCHNORM):
            setattr(model, name, _global_copy(child))
        else:
            synchronised(child, device)
    return model


def _global_copy(layer: nn.modules.batchnorm._BatchNorm) -> GlobalBatchNorm:
    """A GlobalBatchNorm sharing the layer's settings, parameters and buffers."""
    copy = GlobalBatchNorm(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    copy.weight, copy.bias = layer.weight, layer.bias
    copy.running_mean, copy.running_var = layer.running_mean, layer.running_var
    copy.num_batches_tracked = layer.num_batches_tracked
    copy.train(layer.training)
    return copy

"""Temperature scaling fitted on the validation split (`evaluate.calibrate`): one number T that divides the logits,
chosen to minimise the validation NLL (Guo et al., "On Calibration of Modern Neural Networks", 2017).

Dividing every logit by the same T > 0 never changes which class is on top, so accuracy stays as trained; T > 1
softens an over-confident model, T < 1 sharpens an under-confident one (label smoothing and MixUp make those). It is
fitted on the validation split's logits of the model alone, without test-time augmentation, because that is what
`pipeline predict`, `pipeline serve` and the ONNX file run. The test split is never used for it.
"""

import math

import torch

from pipeline.models.outputs import loss

# Temperatures outside this range mean the validation split gave no usable signal (a handful of samples, all right).
LOWEST, HIGHEST = 0.05, 20.0


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of `logits / T` for `labels` (L-BFGS on log T, in float64); 1 when there
    are no samples or no temperature does better than 1."""
    if not len(labels):
        return 1.0
    logits = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(logits / log_t.exp(), labels)
        value.backward()
        return value

    optimizer.step(closure)
    temperature = min(max(math.exp(log_t.item()), LOWEST), HIGHEST)
    with torch.no_grad():
        better = loss(logits / temperature, labels) < loss(logits, labels)
    return temperature if bool(better) else 1.0


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """The mean negative log-likelihood of the labels under `logits / temperature`."""
    with torch.no_grad():
        return float(loss(logits.double() / temperature, labels)) if len(labels) else 0.0

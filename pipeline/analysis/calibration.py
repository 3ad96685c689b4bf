"""Temperature scaling fitted on the validation split (`evaluate.calibrate`): one number T that divides the logits,
chosen to minimise the validation NLL (Guo et al., "On Calibration of Modern Neural Networks", 2017).

Dividing every logit by the same T > 0 never changes which class is on top, so accuracy stays as trained; T > 1
softens an over-confident model, T < 1 sharpens an under-confident one (label smoothing and MixUp make those). It is
fitted on the validation split's logits of the model alone, without test-time augmentation, because that is what
`pipeline predict`, `pipeline serve` and the ONNX file run. The test split is never used for it.

A temperature fitted on a few hundred images can be noise: it is applied only where the validation split shows
that it carries over to images it was not fitted on (`held_out_check`): fitted on four fifths of the validation
images and scored on the fifth left out, in turn, it must lower their NLL by more than one standard error of the
per-image differences, and not raise their expected calibration error.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.analysis.diagnostics import expected_calibration_error, sample_losses
from pipeline.models.outputs import loss, probabilities

# A best temperature outside this range means the validation split gives no usable signal: its images are separated
# perfectly (the NLL falls towards 0 as T does), or the model's logits say nothing about them.
LOWEST, HIGHEST = 0.05, 20.0
FOLDS = 5
STANDARD_ERRORS = 1.0  # how far the held-out NLL must fall, in standard errors of the per-image differences


@dataclass(frozen=True)
class HeldOut:
    """The validation images scored as trained and with a temperature fitted without them (fold by fold): mean NLL
    and ECE of each, and the standard error of the mean per-image NLL difference."""

    nll_as_trained: float
    nll_calibrated: float
    ece_as_trained: float
    ece_calibrated: float
    standard_error: float

    @property
    def carries_over(self) -> bool:
        """The held-out NLL falls by more than `STANDARD_ERRORS` standard errors, and the ECE does not rise."""
        gain = self.nll_as_trained - self.nll_calibrated
        return gain > STANDARD_ERRORS * self.standard_error and self.ece_calibrated <= self.ece_as_trained


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of `logits / T` for `labels` (L-BFGS on log T, in float64); 1 when there
    are no samples, every one is classified right (the NLL then falls towards 0 with T: no best temperature), no
    temperature does better than 1, or the best lies outside [LOWEST, HIGHEST]."""
    if not len(labels) or bool((probabilities(logits).argmax(1) == labels).all()):
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
    temperature = math.exp(log_t.item())
    usable = LOWEST <= temperature <= HIGHEST and nll(logits, labels, temperature) < nll(logits, labels)
    return temperature if usable else 1.0


def held_out_check(logits: torch.Tensor, labels: torch.Tensor, folds: int = FOLDS) -> HeldOut:
    """Each validation image scored with the temperature fitted on the other folds (image i in fold i mod `folds`:
    the split is shuffled already), beside its score as trained."""
    calibrated = torch.empty_like(logits, dtype=torch.float64)
    fold = torch.arange(len(labels)) % max(min(folds, len(labels)), 1)
    for held in (fold == f for f in fold.unique()):
        calibrated[held] = logits[held].double() / fit_temperature(logits[~held], labels[~held])
    actual = labels.numpy()
    before = probabilities(logits.double()).numpy()
    after = probabilities(calibrated).numpy()
    differences = sample_losses(before, actual) - sample_losses(after, actual)
    spread = float(np.std(differences, ddof=1)) if len(differences) > 1 else math.inf
    return HeldOut(
        nll_as_trained=nll(logits, labels),
        nll_calibrated=nll(calibrated, labels),
        ece_as_trained=expected_calibration_error(before, actual),
        ece_calibrated=expected_calibration_error(after, actual),
        standard_error=spread / math.sqrt(max(len(differences), 1)),
    )


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """The mean negative log-likelihood of the labels under `logits / temperature`."""
    with torch.no_grad():
        return float(loss(logits.double() / temperature, labels)) if len(labels) else 0.0

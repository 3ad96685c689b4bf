"""Out-of-sample class probabilities by k-fold cross-validation, for the audit's label finder (cleanlab reads them).

The pool (train + val) is cut into `folds` stratified folds; for each, a fresh model of the audited config is trained
on the other folds by the train stage's own `fit`, with every `train.*` key of the config (for its `epochs`: the
audit's named budget; the weights scored are the moving average's when `train.ema` is on), then scores its own fold,
which it never saw. The held-out images (the test split) are scored by
every fold model, none of which saw them, and the probabilities averaged. Each fold model also gives the features
(the input of its last linear layer) of the images it did not see, for the outlier finder: its own fold, and for the
first model the held-out images. Out-of-sample features matter: a model that trained on a mislabelled image pulls it
away from its true class, where it would look like an outlier.
"""

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn
from tqdm import tqdm

from pipeline.config.params import ModelConfig
from pipeline.core.runtime import Normalization, derived_seed
from pipeline.data.store import DatasetMeta, SplitArrays
from pipeline.models.forward import predict_logits
from pipeline.models.outputs import probabilities
from pipeline.models.pretrained import StateDict
from pipeline.stages.train import build_training, fit


@dataclass(frozen=True)
class CrossValScores:
    """The pool's out-of-fold probabilities, the held-out images' averaged ones, and groups of out-of-sample features,
    each (the rows it holds, pool rows first and then the held-out ones; their features) in one model's space."""

    pool: np.ndarray
    held_out: np.ndarray
    features: list[tuple[np.ndarray, np.ndarray]]


def cross_val_scores(
    config: ModelConfig, meta: DatasetMeta, pool: SplitArrays, held_out: SplitArrays, folds: int, seed: int,
    device: torch.device, weights: StateDict | None = None,
) -> CrossValScores:
    """Train `folds` models as the module says (each from the pretrained `weights` when given, as the train stage
    starts) and score what each did not see."""
    labels = np.asarray(pool.labels)
    out_of_fold = np.zeros((len(labels), len(meta.classes)), np.float32)
    held = np.zeros((len(held_out.labels), len(meta.classes)), np.float32)
    features = []
    cuts = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    for fold, (train_rows, own_rows) in enumerate(cuts):
        fold_set = SplitArrays(pool.inputs[train_rows], labels[train_rows])
        model = _trained(config, meta, fold_set, derived_seed(seed, fold), device, weights)
        out_of_fold[own_rows] = _probabilities(model, pool.inputs[own_rows], config, meta, device)
        held += _probabilities(model, held_out.inputs, config, meta, device) / folds
        features.append((own_rows, _features(model, pool.inputs[own_rows], config, meta, device)))
        if fold == 0:
            rows = len(labels) + np.arange(len(held_out.labels))
            features.append((rows, _features(model, held_out.inputs, config, meta, device)))
    return CrossValScores(out_of_fold, held, features)


def _trained(
    config: ModelConfig, meta: DatasetMeta, train_set: SplitArrays, seed: int, device: torch.device,
    weights: StateDict | None,
) -> nn.Module:
    """A fresh model trained on `train_set` for the config's epochs by the train stage's `fit`; the weights it
    scores (the moving average's, with `train.ema` on)."""
    model, feed, recipe = build_training(config, seed, meta, train_set, device, weights=weights)
    steps = config.train.epochs * len(feed)
    with tqdm(total=steps, desc=f"audit fold of {config.name}", unit="batch", disable=None) as bar:
        fit(model, recipe, feed, range(1, config.train.epochs + 1), [], config=config, seed=seed, bar=bar)
    return recipe.scored(model)


def _probabilities(
    model: nn.Module, inputs: np.ndarray, config: ModelConfig, meta: DatasetMeta, device: torch.device
) -> np.ndarray:
    logits = predict_logits(model, inputs, config.train.batch_size, device, Normalization.from_stats(meta))
    return probabilities(logits).numpy()


def _features(
    model: nn.Module, inputs: np.ndarray, config: ModelConfig, meta: DatasetMeta, device: torch.device
) -> np.ndarray:
    """The input of the model's last linear layer for every image: what the classifier separates the classes by (a
    model without one: its logits)."""
    linear = [layer for layer in model.modules() if isinstance(layer, nn.Linear)]
    normalization = Normalization.from_stats(meta)
    if not linear:
        return predict_logits(model, inputs, config.train.batch_size, device, normalization).numpy()
    seen: list[torch.Tensor] = []
    hook = linear[-1].register_forward_hook(lambda _layer, args, _out: seen.append(args[0].detach().float().cpu()))
    try:
        predict_logits(model, inputs, config.train.batch_size, device, normalization)
    finally:
        hook.remove()
    return torch.cat(seen).flatten(1).numpy()

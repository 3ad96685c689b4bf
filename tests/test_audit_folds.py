"""The audit's folds are trained by the train stage's own `fit`: every `train.*` key of the audited model applies."""

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

import pipeline.stages.audit_folds as audit_folds
import pipeline.stages.train as stage
from pipeline.config.params import parse_params
from pipeline.data.store import load_meta, load_split
from tests.helpers.params import tiny_raw

# cifar_best's recipe keys on a tiny airbench net: label smoothing, a moving average of the weights, one-cycle SGD.
BEST_LIKE = {
    "dataset": "catsdogs", "arch": "airbench", "stem": 4, "widths": [4, 8, 8], "epochs": 2, "batch_size": 4,
    "optimizer": "sgd", "lr": 0.05, "lr_schedule": "onecycle", "label_smoothing": 0.2, "ema": 0.9,
}


def test_an_audit_fold_trains_with_the_models_label_smoothing_and_weight_average(prepared, monkeypatch):
    params = parse_params(tiny_raw(**{"models.best_like": BEST_LIKE}))
    config = params.model("best_like")
    smoothing, averaged = [], []
    real_step, real_build = stage.train_step, audit_folds.build_training

    def recording_step(model, recipe, inputs, targets):
        smoothing.append(recipe.smoothing)
        return real_step(model, recipe, inputs, targets)

    def recording_build(*args, **kwargs):
        model, feed, recipe = real_build(*args, **kwargs)
        averaged.append((model, recipe.ema))
        return model, feed, recipe

    real_trained, scored = audit_folds._trained, []

    def recording_trained(*args, **kwargs):
        scored.append(real_trained(*args, **kwargs))
        return scored[-1]

    monkeypatch.setattr(stage, "train_step", recording_step)
    monkeypatch.setattr(audit_folds, "build_training", recording_build)
    monkeypatch.setattr(audit_folds, "_trained", recording_trained)
    pool = load_split(prepared, "catsdogs", "train")
    held_out = load_split(prepared, "catsdogs", "test")
    scores = audit_folds.cross_val_scores(
        config, load_meta(prepared, "catsdogs"), pool, held_out, folds=2, seed=params.seed, device=torch.device("cpu")
    )
    assert smoothing and set(smoothing) == {0.2}
    assert len(averaged) == 2 and all(isinstance(ema, AveragedModel) for _, ema in averaged)
    model, ema = averaged[-1]
    assert int(ema.n_averaged) > 0  # updated after every step
    weights = dict(model.named_parameters())
    assert any(not torch.equal(value, weights[name]) for name, value in ema.module.named_parameters())
    assert [fold is ema.module for fold, (_, ema) in zip(scored, averaged, strict=True)] == [True, True]
    assert scores.pool.shape == (len(pool.labels), 2) and np.allclose(scores.pool.sum(1), 1, atol=1e-5)

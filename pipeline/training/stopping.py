"""When a run ends before its planned `train.epochs`: early stopping (`train.patience`), once `train.monitor` has gone
`patience` epochs without improving on its best by more than `train.min_delta` (Keras' EarlyStopping); and
`train.stop_after`, after that epoch whatever the curve (`pipeline tune` sets it on a trial its pruner stopped).
null for both: off, every planned epoch runs.

The decision reads the run's history alone, so a run resumed from its checkpoint stops at the same epoch as an
uninterrupted one. The learning-rate schedule stays defined over the planned `train.epochs`: a stop cuts it short,
it does not stretch it over the epochs that ran.
"""

from pipeline.config.training import TrainParams
from pipeline.training.keep import MONITORED


def epochs_without_improvement(history: list[dict[str, float]], monitor: str, min_delta: float) -> int:
    """How many epochs at the end of `history` did not improve the monitored validation figure by more than
    `min_delta` on the best before them (the first epoch always improves)."""
    key, higher_is_better = MONITORED[monitor]
    best, waited = None, 0
    for row in history:
        value = row[key] if higher_is_better else -row[key]
        if best is None or value > best + min_delta:
            best, waited = value, 0
        else:
            waited += 1
    return waited


def should_stop(history: list[dict[str, float]], train_params: TrainParams) -> bool:
    """Whether the run ends after the last epoch of `history`: it reached `stop_after`, or early stopping is on and
    its patience has run out."""
    if train_params.stop_after is not None and history and history[-1]["epoch"] >= train_params.stop_after:
        return True
    if train_params.patience is None or not history or MONITORED[train_params.monitor][0] not in history[-1]:
        return False  # a run without validation (the audit's folds) has nothing to stop early on
    return epochs_without_improvement(history, train_params.monitor, train_params.min_delta) >= train_params.patience


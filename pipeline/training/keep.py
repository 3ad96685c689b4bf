"""Which epoch's weights a run keeps: the best by a validation figure (`train.keep: best`, the default), or the last.

The choice is made on the validation split only, never on the test split: the test split stays an unbiased
estimate of the kept model. The kept epoch's weights travel in the checkpoint, so a resumed run keeps the same.
"""

from typing import Any

from torch import nn

MONITORED = {"val_loss": ("val/loss", False), "val_acc": ("val/acc", True)}  # history key, higher is better


def chosen_row(history: list[dict[str, float]], keep: str, monitor: str) -> dict[str, float]:
    """The epoch the run keeps: the last, or the first epoch with the best monitored validation figure."""
    if keep == "last":
        return history[-1]
    key, higher_is_better = MONITORED[monitor]
    return max(history, key=lambda row: row[key] if higher_is_better else -row[key])


class KeptWeights:
    """The weights of the epoch chosen so far (for `best`; `last` keeps the model as it ends)."""

    def __init__(self, keep: str, monitor: str) -> None:
        self.keep, self.monitor = keep, monitor
        self.epoch, self.state = 0, None

    def keep_if_chosen(self, model: nn.Module, history: list[dict[str, float]]) -> None:
        """Take the model's weights if the epoch just ended (the last of `history`) is the one to keep."""
        row = chosen_row(history, self.keep, self.monitor)
        if row is history[-1] and row["epoch"] != self.epoch:
            self.epoch = int(row["epoch"])
            if self.keep == "best":
                self.state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}

    def restore_into(self, model: nn.Module) -> None:
        """Put the kept weights into the model at the end of the run (nothing to do when keeping the last)."""
        if self.state is not None:
            model.load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores of it."""
        return {"epoch": self.epoch, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint's kept weights."""
        self.epoch, self.state = saved["epoch"], saved["state"]


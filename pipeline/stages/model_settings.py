"""Stage `model_settings`: a model's dataset and architecture, checked before DVC looks for its dataset's folders.

A train stage depends on `data/processed/<dataset>`, the dataset named by `models.<model>.dataset`. When that names
no dataset (`-S models.catsdogs_cnn.dataset=nowhere`), DVC would stop at the missing folder with an error that
names neither the model nor the key. This stage lists the model's block as its params and writes
`data/settings/models/<model>.json`, which the train stage depends on, so DVC runs it first: it reads the whole
params file as every stage does, refusing a bad value with its key, and writes the model's dataset and architecture,
and what decides its pretrained weights (`weights`: null without them), which the `weights@<model>` stage depends on.
A change to the block re-runs it (a second); the file changes only with the dataset, architecture or weights, so
the train stage re-runs for what its own params list, as before.
"""

from typing import Any

from pipeline.config.params import Params
from pipeline.core.atomic import write_json
from pipeline.core.paths import Paths
from pipeline.stages.command import stage_command


def model_settings(model: str, params: Params, paths: Paths) -> dict[str, Any]:
    """Write the model's dataset, architecture and weights request (its params checked whole); returns them."""
    config = params.model(model)
    request = getattr(config.arch_args, "weights_request", None)
    written = {"dataset": config.dataset, "arch": config.arch, "weights": request() if request else None}
    write_json(paths.model_settings_file(model), written)
    return written


def model_settings_named(model: str, params: Params) -> dict[str, Any]:
    """Write the settings of the model named, as its command does; returns them."""
    return model_settings(model, params, Paths())


if __name__ == "__main__":
    stage_command(model_settings_named)

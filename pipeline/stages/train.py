"""Stage `train`: fit one model from params on its dataset's preprocessed train split (see `pipeline.training`)."""

from pipeline.config.params import Params
from pipeline.core.paths import Paths
from pipeline.training.loop import run_training


def train(model_name: str, params: Params, paths: Paths) -> dict[str, float | int | str]:
    """Train one model (resuming its checkpoint if a previous run was cut short); returns the last epoch's row with
    the run's summary. Under torchrun every process runs this on its share of each batch; only rank 0 writes."""
    return run_training(model_name, params, paths)


def train_named(model_name: str, params: Params) -> dict[str, float | int | str] | None:
    """Train the model named, as its command does; what it prints: the last epoch's row from the process that
    writes the model, None from the other torchrun processes."""
    from pipeline.core.distributed import current_shard

    result = train(model_name, params, Paths())
    return result if current_shard().is_main else None


if __name__ == "__main__":
    from pipeline.stages.command import stage_command

    stage_command(train_named)

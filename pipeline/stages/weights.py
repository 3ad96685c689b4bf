"""Stage `weights@<model>`: the pretrained weights a model starts from, in a folder DVC tracks.

A model block with `pretrained: true` gets its architecture's published weights (torchvision's weights API, a timm
backbone's from the Hugging Face hub), or the local file its `weights` key names; they are checked against the
published architecture (every tensor, by name and shape) and written into data/weights/<model>/ with a record of
their source and SHA-256 (`pipeline.models.pretrained`). The train stage depends on that folder and loads the
weights from it, so their hash is in dvc.lock, `dvc push` shares them, a machine without a network trains from a
`dvc pull`, and weights that change upstream (`dvc repro -f weights@<model>`) show as a changed dependency of train.
A model without pretrained weights gets a record of none, `{"weights": null}`, written without importing torch.

The stage depends on data/settings/models/<model>.json, where `model_settings` writes what decides the weights (the
arch, `pretrained`, `weights` and the args that choose among published weights): it re-runs when that changes,
not for any other key of the model's block. A local file changed in place keeps its name: `dvc repro -f
weights@<model>` reads it again.
"""

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.params import ModelConfig, Params
from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import WEIGHTS_RECORD, Paths
from pipeline.stages.command import stage_command

if TYPE_CHECKING:  # torch is imported only for a model with pretrained weights
    from pipeline.models.pretrained import StateDict, Upstream


def weights(model: str, params: Params, paths: Paths) -> dict[str, Any]:
    """Write the model's pretrained weights and their record into its weights folder (a record of none when it has
    none); returns the record."""
    config = params.model(model)
    folder = paths.weights_dir(model)
    shutil.rmtree(folder, ignore_errors=True)
    if not getattr(config.arch_args, "pretrained", False):
        folder.mkdir(parents=True)
        write_json(folder / WEIGHTS_RECORD, {"weights": None})
        return {"weights": None}
    return _write_pretrained(config, paths, folder)


def weights_named(model: str, params: Params) -> dict[str, Any]:
    """Write the weights of the model named, as its command does; returns their record."""
    return weights(model, params, Paths())


def _write_pretrained(config: ModelConfig, paths: Paths, folder: Path) -> dict[str, Any]:
    """The weights the model's block asks for, fetched or read, checked against the published architecture and
    written (torch and the models imported only here)."""
    from pipeline.models import registry
    from pipeline.models.pretrained import mismatch, read_local_weights, write_weights

    spec, args, key = registry.PRETRAINED[config.arch], config.arch_args, f"models.{config.name}"
    if args.weights is not None:
        local = paths.root / args.weights  # a relative path is the repository root's; an absolute one stays as is
        state, source = read_local_weights(local, f"{key}.weights"), {"from": "file", "path": args.weights}
        origin = f"{key}.weights ({local})"
    else:
        upstream = spec.upstream(args)
        state, source, origin = _fetched(upstream, config.name), upstream.source, f"{key}: {_label(upstream.source)}"
    problem = mismatch(spec.reference(args).state_dict(), state, spec.fresh(args))
    if problem:
        raise PipelineError(f"{origin}: not weights of {_architecture(config)}: {problem}")
    return write_weights(folder, state, source)


def _fetched(upstream: "Upstream", model: str) -> "StateDict":
    """Upstream weights fetched (or read from their cache); without a network and a cached copy, an error naming
    the model, the weights and what to do."""
    try:
        return upstream.fetch()
    except (OSError, RuntimeError, ValueError) as exc:  # no network (URLError is an OSError), a bad hash or file
        said = " ".join(str(exc).split())[:200]
        raise PipelineError(
            f"models.{model}: could not fetch its pretrained weights {_label(upstream.source)} ({said}); without a "
            f"network, copy them to {upstream.by_hand} and run `dvc repro weights@{model}` again, or `dvc pull "
            f"weights@{model}` where they were pushed, or set pretrained: false"
        ) from None


def _label(source: dict[str, str]) -> str:
    """Upstream weights in a few words: the torchvision enum or the timm model, and where they come from."""
    return f"{source.get('name') or source.get('model_name')} ({source['url']})"


def _architecture(config: ModelConfig) -> str:
    """The architecture a weights file must match, as the model block names it."""
    model_name = getattr(config.arch_args, "model_name", None)
    return f"arch {config.arch}" + (f" {model_name}" if model_name else "")


if __name__ == "__main__":
    stage_command(weights_named)

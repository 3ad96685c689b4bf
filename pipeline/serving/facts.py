"""What `GET /model` says about the served model: the model card's facts that need no test predictions, as JSON.

They come from where the card's come from (`pipeline.analysis.card`): the model file's provenance (architecture
and args, dataset, classes, preprocessing, seed, kept epoch, the params that differ from the defaults:
`SavedModel.non_default_params`) and the evaluate stage's `metrics/<model>/test.json` when it is there. With `--backend
onnx` the provenance is read from the .pt file beside the .onnx one; without it, only what the export records (the
preprocessing and classes) is known.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.inference.backend import Backend

if TYPE_CHECKING:  # the torch backend's module: importing it imports torch, which the ONNX backend does without
    from pipeline.models.file import SavedModel


def model_facts(model_file: Path, backend: Backend, kind: str) -> dict[str, Any]:
    """The served model's facts: name, arch, dataset, classes, preprocessing, epoch, test figures and the rest of
    its provenance (None where not known), with the backend `kind`, the file it runs and the card's path."""
    saved = _provenance(model_file, backend)
    name = saved.model if saved else model_file.stem
    test, card = _evaluated(model_file, name)
    served = model_file.with_suffix(".onnx") if kind == "onnx" else model_file
    about = {"backend": kind, "file": str(served), "card": card}
    if saved is None:
        unknown = dict.fromkeys(("arch", "arch_args", "dataset", "seed", "epoch", "epochs", "kept", "monitor", "params"))
        return {"name": name, **unknown, **_input(backend), "test": test, **about}
    return {
        "name": name,
        "arch": saved.arch,
        "arch_args": saved.arch_args,
        "dataset": saved.dataset,
        **_input(backend),
        "seed": saved.seed,
        "epoch": saved.epoch,
        "epochs": saved.train["epochs"],
        "kept": saved.kept,
        "monitor": saved.train["monitor"],
        "params": {key: {"value": value, "default": default} for key, value, default in saved.non_default_params()},
        "test": test,
        **about,
    }


def _input(backend: Backend) -> dict[str, Any]:
    """The classes, the preprocessing and the temperature the served probabilities are calibrated with."""
    preprocessing = backend.preprocessing.to_dict()
    return {"classes": preprocessing.pop("classes"), "preprocessing": preprocessing, "temperature": backend.temperature}


def _provenance(model_file: Path, backend: Backend) -> "SavedModel | None":
    """The model file's provenance: the torch backend's own, else the .pt file's beside the one given, if readable."""
    saved = getattr(backend, "saved", None)
    if saved is not None:
        return saved
    torch_file = model_file.with_suffix(".pt")
    if not torch_file.is_file():
        return None
    from pipeline.models.file import load_model

    try:
        return load_model(torch_file)[1]
    except PipelineError:
        return None


def _evaluated(model_file: Path, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """test.json's figures and the card's path, for a model file in a repository's `models/` (None where absent)."""
    if model_file.parent.name != "models":
        return None, None
    paths = Paths(model_file.parent.parent)
    test, card = paths.test_metrics(name), paths.model_card(name)
    figures = json.loads(test.read_text()) if test.is_file() else None
    return figures, str(card) if card.is_file() else None

"""`pipeline publish MODEL --repo OWNER/NAME`: a trained model's files gathered into one folder as a Hugging Face Hub
model repository holds them, then uploaded (`--dry-run DIR`: the folder written, nothing uploaded).

The folder: `<model>.pt`, `<model>.onnx`, `<model>.calibration.json` (where evaluate wrote one), `labels.json` (the
classes in output order with the preprocessing, from the ONNX file's metadata) and `README.md`, the Hub's card
(`pipeline.sharing.hub_card`). Every file is checked before anything is written: the ONNX export and the calibration
must be of this model file, so that what is published is one model.
"""

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import onnx
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from pipeline.config.resolution import read_lock
from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.inference.onnx_metadata import ExportInfo
from pipeline.models.calibration import load_calibration
from pipeline.models.file import SavedModel, load_model
from pipeline.sharing.hub_card import hub_card

LABELS, CARD = "labels.json", "README.md"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
NO_TOKEN = (
    "no Hugging Face token: export HF_TOKEN=hf_... (a token with write access, from "
    "https://huggingface.co/settings/tokens) or log in once with `hf auth login` (`huggingface-cli login`)"
)


class HubApi(Protocol):
    """The part of `huggingface_hub.HfApi` an upload uses (tests pass a fake)."""

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any: ...
    def create_branch(self, repo_id: str, **kwargs: Any) -> Any: ...
    def upload_folder(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Upload:
    """Where and how to upload: the repository, whether a new one is private, the branch (None: main) and the
    commit message (None: the Hub's)."""

    repo: str
    private: bool = False
    revision: str | None = None
    message: str | None = None


def check_repo(repo: str) -> str:
    """`repo` if it is a Hub repository id, OWNER/NAME; otherwise an error naming `--repo`."""
    if not REPO_ID.match(repo):
        raise PipelineError(f"--repo {repo!r}: not a Hub repository id; give it as OWNER/NAME (e.g. alice/my-model)")
    return repo


def write_folder(model: str, repo: str, folder: Path, paths: Paths, dataset: str | None = None) -> list[str]:
    """Write the folder `publish` uploads for `model` into `folder` (new or empty); `dataset` is the Hub dataset id
    the card names (default: the model's dataset name). Returns the file names written."""
    check_repo(repo)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise PipelineError(f"{folder}: exists and is not an empty folder; name a new folder for --dry-run")
    sources = _sources(model, paths)
    saved, info = _checked_model(model, paths)
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        shutil.copyfile(source, folder / name)
    write_json(folder / LABELS, _labels(info))
    metrics = _test_metrics(model, paths)
    text = paths.model_card(model).read_text()
    card = hub_card(repo, dataset or saved.dataset, info, metrics, text, _described(model, sources))
    (folder / CARD).write_text(str(card))
    return sorted([*sources, LABELS, CARD])


def publish(model: str, upload: Upload, paths: Paths, dataset: str | None = None, api: HubApi | None = None) -> str:
    """Upload `model`'s folder to the Hub repository `upload.repo` (created where missing) through `api` (default:
    the Hub's client); returns its URL. Without a token (HF_TOKEN or the Hub's stored login) an error, before anything
    is written or sent."""
    check_repo(upload.repo)
    token = get_token()
    if not token:
        raise PipelineError(NO_TOKEN)
    with tempfile.TemporaryDirectory(prefix="publish-") as scratch:
        folder = Path(scratch) / model
        write_folder(model, upload.repo, folder, paths, dataset)
        return _sent(api or HfApi(token=token), folder, upload)


def _sent(api: HubApi, folder: Path, upload: Upload) -> str:
    """The folder uploaded as one commit; the Hub's refusal (a read-only token, another owner's name) as an error."""
    try:
        url = api.create_repo(upload.repo, private=upload.private, exist_ok=True, repo_type="model")
        if upload.revision:
            api.create_branch(upload.repo, branch=upload.revision, exist_ok=True)
        api.upload_folder(
            repo_id=upload.repo, folder_path=folder, revision=upload.revision, commit_message=upload.message,
        )
    except HfHubHTTPError as exc:
        said = " ".join(str(exc).split())[:300]
        raise PipelineError(
            f"the Hub refused the upload to {upload.repo} ({said}); check that the token may write there (a write "
            "token, and OWNER your user name or an organisation you belong to)"
        ) from None
    return str(url)


def _sources(model: str, paths: Paths) -> dict[str, Path]:
    """Each file copied as it is, by its name in the folder; a missing one is an error naming the stage to run."""
    needed = {
        paths.model_file(model): f"train@{model}",
        paths.onnx_file(model): f"export@{model}",
        paths.model_card(model): f"evaluate@{model}",
        paths.test_metrics(model): f"evaluate@{model}",
    }
    for path, stage in needed.items():
        if not path.is_file():
            raise PipelineError(f"{path}: not found; make it with `dvc repro {stage}` (or `dvc pull` it), then publish")
    copied = [paths.model_file(model), paths.onnx_file(model), paths.calibration_file(model)]
    return {path.name: path for path in copied if path.is_file()}


def _checked_model(model: str, paths: Paths) -> tuple[SavedModel, ExportInfo]:
    """The model file's provenance and the ONNX file's metadata, once both are known to be of the same model (and
    the calibration, where there is one, fitted to this model file)."""
    _, saved = load_model(paths.model_file(model))
    load_calibration(paths.model_file(model))
    _check_locked_export(model, paths)
    info = onnx_export_info(paths.onnx_file(model))
    if (info.model, info.arch, info.preprocessing.classes) != (saved.model, saved.arch, saved.classes):
        raise PipelineError(
            f"{paths.onnx_file(model)}: exported from another model than {paths.model_file(model)} (model, "
            f"architecture or classes differ); export it again: `dvc repro export@{model}`"
        )
    return saved, info


def _check_locked_export(model: str, paths: Paths) -> None:
    """Where dvc.lock records the export stage's last run, the model file must be the one it exported and the ONNX
    file the one it wrote (a model trained again since, its export not re-run, is refused)."""
    stage = f"export@{model}"
    entry = ((read_lock(paths.lock_file(), stage) or {}).get("stages") or {}).get(stage)
    if not entry:
        return
    recorded = {item["path"]: item.get("md5") for item in [*entry.get("deps", []), *entry.get("outs", [])]}
    for path in (paths.model_file(model), paths.onnx_file(model)):
        key = path.relative_to(paths.root).as_posix()
        if key in recorded and recorded[key] != hashlib.md5(path.read_bytes()).hexdigest():
            raise PipelineError(
                f"{path}: not the file {stage} last exported or wrote (dvc.lock); run `dvc repro {stage}` so that "
                "the ONNX file is of this model file, then publish"
            )


def onnx_export_info(onnx_file: Path) -> ExportInfo:
    """The ONNX file's metadata (its graph is not read into memory beyond the file itself)."""
    try:
        graph = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (onnx raises protobuf's DecodeError and others on a damaged file)
        raise PipelineError(
            f"{onnx_file}: not a readable ONNX file ({exc}); export it again: `dvc repro export@{onnx_file.stem}`"
        ) from None
    return ExportInfo.from_props({prop.key: prop.value for prop in graph.metadata_props}, onnx_file)


def _labels(info: ExportInfo) -> dict[str, Any]:
    """labels.json: the classes in the order of the outputs, and what an input must be."""
    return {
        "classes": info.preprocessing.classes,
        "kind": info.kind,
        "preprocessing": info.preprocessing.to_dict(),
        **({"features": list(info.features)} if info.kind == "table" else {}),
        "temperature": info.temperature,
        "model": info.model,
        "arch": info.arch,
        "dataset": info.dataset,
    }


def _test_metrics(model: str, paths: Paths) -> dict[str, Any]:
    """test.json, with the figures the card states; an older or damaged one is an error naming the stage to run."""
    path = paths.test_metrics(model)
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError:
        metrics = None
    if not _states_figures(metrics):
        raise PipelineError(f"{path}: lacks accuracy, ece or macro.f1; run `dvc repro evaluate@{model}` again")
    return metrics


def _states_figures(metrics: Any) -> bool:
    return (
        isinstance(metrics, dict) and {"accuracy", "ece"} <= set(metrics)
        and isinstance(metrics.get("macro"), dict) and "f1" in metrics["macro"]
    )


def _described(model: str, sources: dict[str, Path]) -> dict[str, str]:
    """What each file in the folder is, for the card."""
    about = {
        f"{model}.pt": "the PyTorch weights and their provenance, for this pipeline (`pipeline predict`, `serve`)",
        f"{model}.onnx": "the exported graph for ONNX Runtime: class probabilities out, the preprocessing in its metadata",
        f"{model}.calibration.json": "the temperature evaluate fitted (already applied inside the ONNX graph)",
    }
    return {
        **{name: about[name] for name in sources},
        LABELS: "the classes in output order, with the preprocessing an input needs",
        CARD: "this card",
    }

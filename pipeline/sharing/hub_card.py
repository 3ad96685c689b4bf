"""The model card as the Hugging Face Hub reads it: `README.md` with YAML metadata (library, task and tags, the
dataset, the test split's accuracy, macro F1 and calibration error as `model-index` results), then the evaluate
stage's own card (`models/<model>.card.md`), then the files and how to use them.

Built with `huggingface_hub.ModelCardData` and `EvalResult`, so the Hub's own parser reads it back. No torch here.
"""

from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from pipeline.inference.onnx_metadata import ExportInfo

RESIZES = {
    "squash": "resized, its aspect ratio not kept",
    "crop": "the centred square of the short side, resized",
    "pad": "padded to a square with black bars, resized",
}
LIBRARY = "onnx"  # the file a user runs without this pipeline; the .pt file needs the pipeline's code
TASKS = {"images": "image-classification", "table": "tabular-classification"}
# (key in test.json, the Hub's metric type, its display name, metric_args): each a result on the test split.
METRICS = (
    (("accuracy",), "accuracy", "Accuracy", None),
    (("macro", "f1"), "f1", "Macro F1", {"average": "macro"}),
    (("ece",), "ece", "Expected calibration error", None),
)


def hub_card(
    repo: str, dataset: str, info: ExportInfo, metrics: dict[str, Any], text: str, files: dict[str, str]
) -> ModelCard:
    """The Hub's card for `repo`: metadata from the export's `info` and test.json's `metrics` (on the test split of
    the Hub dataset id `dataset`), then our card's `text`, then `files` (name: what it is) and how to use them."""
    task = TASKS[info.kind]
    data = ModelCardData(
        model_name=repo.split("/")[-1],
        library_name=LIBRARY,
        pipeline_tag=task,
        tags=[task, "pytorch", "onnx", "dvc", info.arch],
        datasets=[dataset],
        metrics=[metric for _, metric, _, _ in METRICS],
        eval_results=_results(task, dataset, metrics),
    )
    body = "\n\n".join([text.strip(), _files_section(files), _usage_section(repo, info)])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _results(task: str, dataset: str, metrics: dict[str, Any]) -> list[EvalResult]:
    """test.json's figures as the Hub's evaluation results, each on the dataset's test split."""
    return [
        EvalResult(
            task_type=task, dataset_type=dataset, dataset_name=dataset, dataset_split="test",
            metric_type=metric, metric_name=name, metric_value=_figure(metrics, keys), metric_args=args,
        )
        for keys, metric, name, args in METRICS
    ]


def _figure(metrics: dict[str, Any], keys: tuple[str, ...]) -> float:
    value: Any = metrics
    for key in keys:
        value = value[key]
    return round(float(value), 4)


def _files_section(files: dict[str, str]) -> str:
    rows = "\n".join(f"| `{name}` | {what} |" for name, what in files.items())
    return f"## Files\n\n| file | what it is |\n| --- | --- |\n{rows}"


def _usage_section(repo: str, info: ExportInfo) -> str:
    """How to run the model: the ONNX file with ONNX Runtime alone, or the whole folder with `pipeline predict`."""
    return "\n".join([
        "## How to use",
        "",
        f"The ONNX file alone, with ONNX Runtime: {_input_text(info)}; the normalisation is inside the graph; its "
        "output `probabilities` has one column per class, in the order of `labels.json`.",
        "",
        "```python",
        "import json, numpy as np, onnxruntime",
        "from huggingface_hub import hf_hub_download",
        "",
        f'session = onnxruntime.InferenceSession(hf_hub_download("{repo}", "{info.model}.onnx"))',
        f'classes = json.load(open(hf_hub_download("{repo}", "labels.json")))["classes"]',
        *_inputs_code(info),
        "probabilities = session.run(None, {session.get_inputs()[0].name: inputs})[0]",
        "print([classes[i] for i in probabilities.argmax(1)])",
        "```",
        "",
        "Or the whole folder with this pipeline's `pipeline predict` (the same preprocessing as training, any image "
        "size, calibrated probabilities; `--backend onnx` on the .onnx file):",
        "",
        "```bash",
        f'folder=$(python -c \'from huggingface_hub import snapshot_download; print(snapshot_download("{repo}"))\')',
        f'pipeline predict "$folder/{info.model}.pt" photos/',
        "```",
    ])


def _input_text(info: ExportInfo) -> str:
    p = info.preprocessing
    if info.kind == "table":
        return f"its input `features` is float32 of shape (N, {len(info.features)}): {', '.join(info.features)}"
    return (
        f"its input `images` is uint8 of shape (N, {p.size}, {p.size}, {p.channels}), {p.color} images made square "
        f"as training's were (`{p.resize}`: {RESIZES[p.resize]})"
    )


def _inputs_code(info: ExportInfo) -> list[str]:
    """The lines that make `inputs`: one image (a plain resize, exact for `squash`), or one row of features."""
    p = info.preprocessing
    if info.kind == "table":
        return [f"inputs = np.array([[{', '.join('0.0' for _ in info.features)}]], dtype=np.float32)  # your features"]
    mode = "L" if p.color == "gray" else "RGB"
    return [
        "from PIL import Image",
        "",
        f'image = Image.open("photo.jpg").convert("{mode}").resize(({p.size}, {p.size}))',
        f"inputs = np.asarray(image, dtype=np.uint8).reshape(1, {p.size}, {p.size}, {p.channels})",
    ]

"""Where every stage reads and writes. dvc.yaml names the same paths; a test keeps the two in step."""

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
RAW_ARCHIVE, RAW_TABLE, RAW_SAMPLES, RAW_INDEX = "images.zip", "table.csv", "samples.csv", "index.json"
WEIGHTS_STATE, WEIGHTS_RECORD = "weights.safetensors", "weights.json"  # in Paths.weights_dir
AUDIT_FINDINGS = ("near_duplicates", "label_issues", "outliers", "image_quality")  # each a CSV in Paths.audit_dir


@dataclass(frozen=True)
class Paths:
    """All pipeline paths under one repository root (the current directory for DVC and the CLI)."""

    root: Path = Path(".")

    def raw_dir(self, dataset: str) -> Path:
        return self.root / "data" / "raw" / dataset

    def raw_archive(self, dataset: str) -> Path:
        """Every source ends in this one zip of encoded images (see `pipeline.data.archive`)."""
        return self.raw_dir(dataset) / RAW_ARCHIVE

    def raw_table(self, dataset: str) -> Path:
        """A table dataset's raw samples: one CSV, a row per sample (see `pipeline.data.tables`)."""
        return self.raw_dir(dataset) / RAW_TABLE

    def raw_samples(self, dataset: str) -> Path:
        """One row per raw sample: path, class, part, content hash (see `pipeline.data.raw`)."""
        return self.raw_dir(dataset) / RAW_SAMPLES

    def raw_index(self, dataset: str) -> Path:
        """The raw dataset's kind, classes, layout and left-out files (see `pipeline.data.raw`)."""
        return self.raw_dir(dataset) / RAW_INDEX

    def settings_file(self, dataset: str, block: str) -> Path:
        """A dataset's resolved `split`, `preprocess` or `aug` block, defaults filled in: what the split, preprocess
        and train stages depend on (see `pipeline.stages.settings`)."""
        return self.root / "data" / "settings" / dataset / f"{block}.json"

    def model_settings_file(self, model: str) -> Path:
        """`data/settings/models/<model>.json`: the model's dataset and architecture, which its train stage depends
        on (see `pipeline.stages.model_settings`)."""
        return self.root / "data" / "settings" / "models" / f"{model}.json"

    def weights_dir(self, model: str) -> Path:
        """`data/weights/<model>/`: the pretrained weights the model starts from and their record, or a record of
        none (see `pipeline.stages.weights`)."""
        return self.root / "data" / "weights" / model

    def manifest_dir(self, dataset: str) -> Path:
        return self.root / "data" / "manifests" / dataset

    def manifest(self, dataset: str, split: str) -> Path:
        return self.manifest_dir(dataset) / f"{split}.csv"

    def processed_dir(self, dataset: str) -> Path:
        return self.root / "data" / "processed" / dataset

    def metrics_dir(self, name: str) -> Path:
        """Metrics and plots of a dataset's data stages, or of a model's train and evaluate stages."""
        return self.root / "metrics" / name

    def split_metrics(self, dataset: str) -> Path:
        return self.metrics_dir(dataset) / "split.json"

    def split_plots(self, dataset: str) -> Path:
        return self.metrics_dir(dataset) / "split"

    def audit_dir(self, dataset: str) -> Path:
        """The audit's findings (`AUDIT_FINDINGS`), `summary.json` and `plots/`."""
        return self.metrics_dir(dataset) / "audit"

    def preprocess_metrics(self, dataset: str) -> Path:
        return self.metrics_dir(dataset) / "preprocess.json"

    def model_file(self, model: str) -> Path:
        return self.root / "models" / f"{model}.pt"

    def model_card(self, model: str) -> Path:
        """The model's card (Markdown): what it is, how well it does, its input and its limits; written by evaluate."""
        return self.root / "models" / f"{model}.card.md"

    def calibration_file(self, model: str) -> Path:
        """The temperature evaluate fitted for the model, beside its model file (`pipeline.models.calibration`)."""
        return self.root / "models" / f"{model}.calibration.json"

    def onnx_file(self, model: str) -> Path:
        """The export stage's ONNX model: preprocessing and class probabilities inside, stated in its metadata."""
        return self.root / "models" / f"{model}.onnx"

    def program_file(self, model: str) -> Path:
        """The export stage's `torch.export` program, the same graph as the ONNX file (`torch.export.load`)."""
        return self.root / "models" / f"{model}.pt2"

    def checkpoint(self, model: str) -> Path:
        """The end-of-epoch checkpoint a killed training run resumes from; not a DVC output, so it survives."""
        return self.root / "models" / "checkpoints" / f"{model}.ckpt"

    def bench_file(self, model: str) -> Path:
        """The figures of `pipeline bench MODEL`: not a pipeline stage, so kept apart from the stages' metrics."""
        return self.root / "metrics" / "bench" / f"{model}.json"

    def lr_find_plot(self, model: str) -> Path:
        """Where `pipeline lr-find MODEL` saves its plot (not a pipeline stage's output)."""
        return self.metrics_dir(model) / "lr_find.png"

    def lock_file(self) -> Path:
        """dvc.lock: the deps, params and outputs of each stage's last run, as DVC recorded them."""
        return self.root / "dvc.lock"

    def train_dir(self, model: str) -> Path:
        """The train stage's DVCLive folder: metrics.json, per-epoch plots, the learning-curve image."""
        return self.metrics_dir(model) / "train"

    def test_metrics(self, model: str) -> Path:
        return self.metrics_dir(model) / "test.json"

    def export_metrics(self, model: str) -> Path:
        """How closely the exported files agree with PyTorch on the test split."""
        return self.metrics_dir(model) / "export.json"

    def eval_dir(self, model: str) -> Path:
        return self.metrics_dir(model) / "eval"

    def confusion(self, model: str) -> Path:
        return self.eval_dir(model) / "confusion.json"

    def per_class(self, model: str) -> Path:
        """Per-class precision, recall, F1 and support as plot rows; kept out of test.json so that
        `dvc exp show` has a few columns per model, not forty."""
        return self.eval_dir(model) / "per_class.json"

    def reliability(self, model: str) -> Path:
        return self.eval_dir(model) / "reliability.png"

    def misclassified(self, model: str) -> Path:
        return self.eval_dir(model) / "misclassified.png"

    def top_losses(self, model: str) -> Path:
        """The test samples of highest loss, fastai's plot_top_losses (images as a grid, table rows as a table)."""
        return self.eval_dir(model) / "top_losses.png"

    def confused(self, model: str) -> Path:
        """The most confused (actual, predicted) class pairs, most first, as plot rows: fastai's most_confused."""
        return self.eval_dir(model) / "confused.json"

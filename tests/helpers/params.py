"""Tiny, valid params for every dataset and model (each stage runs in about a second on them), and the
repository's own params.yaml."""

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


TINY: dict[str, Any] = {
    "seed": 7,
    "data": {"catsdogs": {"source": "sample", "path": None, "sample_per_class": 12}},
    "split": {"catsdogs": {"train": 6, "val": 3, "test": 3}},
    "preprocess": {"catsdogs": {"image_size": 32, "color": "gray", "normalize": False}},
    "aug": {"rotation": 0, "shift": 0, "zoom": 0, "shear": 0, "hflip": 0, "brightness": 0},
    "train": {"epochs": 1, "batch_size": 4, "optimizer": "adam", "lr": 0.001, "device": "cpu"},
    "evaluate": {"tta": "none", "calibrate": True},
    "models": {
        "catsdogs_cnn": {"dataset": "catsdogs", "arch": "catsdogs_cnn", "epochs": 2, "dropout": [0.25, 0.25, 0.5]}
    },
    "audit": {},  # dvc.yaml's audit stages are `foreach: ${audit}`: the key must be there, empty for none
}


CIFAR_AUG = {"crop_padding": 4, "hflip": 0.5}
TINY_CIFAR: dict[str, Any] = {
    "data": {"cifar10": {"source": "sample", "path": None, "sample_per_class": 4, "sample_test_per_class": 2}},
    "split": {"cifar10": {"val_fraction": 0.25, "seed": 43, "max_train_per_class": None, "max_test_per_class": None}},
    "preprocess": {"cifar10": {"image_size": 32, "color": "rgb", "normalize": True}},
    "models": {
        # Two epochs on real data, one on the sample (its budget).
        "cifar_mlp": {
            "dataset": "cifar10", "arch": "mlp", "hidden": [16, 8], "aug": CIFAR_AUG, "epochs": 2, "sample": {"epochs": 1}
        },
        "cifar_cnn": {"dataset": "cifar10", "arch": "cifar_cnn", "widths": [4, 4, 4], "dense": 8, "aug": CIFAR_AUG},
        "cifar_cnn_bn": {
            "dataset": "cifar10",
            "arch": "cifar_cnn",
            "widths": [4, 4, 4],
            "dense": 8,
            "batchnorm": True,
            "dropout": [0.2, 0.3, 0.4, 0.5],
            "aug": CIFAR_AUG,
            "epochs": 2,
            "sample": {"epochs": 1},
        },
        "cifar_vgg16": {"dataset": "cifar10", "arch": "vgg16", "pretrained": False, "freeze": False, "head": 8},
        "cifar_resnet18": {"dataset": "cifar10", "arch": "resnet18", "optimizer": "sgd", "lr_schedule": "cosine"},
    },
}


TINY_IRIS: dict[str, Any] = {
    "data": {"iris": {"source": "sklearn"}},
    "split": {"iris": {"train": 30, "val": 10, "test": 10}},
    "preprocess": {"iris": {"normalize": True}},
    "models": {"iris_mlp": {"dataset": "iris", "arch": "mlp", "hidden": [8], "epochs": 3, "batch_size": 5}},
}


def tiny_full() -> dict[str, Any]:
    """Tiny params for all three datasets and all seven models, shaped like the repository's params.yaml."""
    raw = copy.deepcopy(TINY)
    for extra in (TINY_CIFAR, TINY_IRIS):
        for block, entries in copy.deepcopy(extra).items():
            raw[block].update(entries)
    return raw


def tiny_raw(**changes: Any) -> dict[str, Any]:
    """A deep copy of the tiny params with dotted-key changes applied, e.g. tiny_raw(**{"aug.hflip": 0.5})."""
    return changed(copy.deepcopy(TINY), changes)


def changed(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`raw` with dotted-key changes applied in place (`{"aug.hflip": 0.5}`), missing blocks created; returns it."""
    for key, value in changes.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


def repo_params() -> dict[str, Any]:
    """The repository's own params.yaml, parsed as YAML."""
    return yaml.safe_load((REPO / "params.yaml").read_text())

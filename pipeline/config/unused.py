"""Keys a dataset's configuration never reads, and the check that none of them is a key the user just changed.

A data block's `path` is read only with `source: local`, its `sample_per_class` (and CIFAR-10's
`sample_test_per_class`) only with `source: sample`. A split block's size of a part the dataset brings (CIFAR-10's
official test set, split folders' `val/` and `test/`) is not read, the part is used as given; nor is the cap of a val
or test part it does not bring, which is drawn from the training pool by its size. A change to such a key would re-run
the stage and change nothing. `check_unused` compares the params with the values dvc.lock recorded for the stage's
last run and stops on a changed key that is not read, naming what would make it count. A change of the keys that
decide what is read (the data block's `source` or `builtin`) lets every other change of the block through: a switch
of source comes with its own keys.
"""

from collections.abc import Mapping
from typing import Any

from pipeline.config.datasets import DataSource
from pipeline.config.resolution import changed_since
from pipeline.core.errors import PipelineError

SAMPLE_KEYS = ("sample_per_class", "sample_test_per_class")
DRAWN_PARTS = ("val", "test")  # the parts a dataset may bring; train is always the pool the others are drawn from


def unused_data_keys(name: str, data: DataSource) -> dict[str, str]:
    """The keys of `data.<name>` its source never reads, each with what would make it count."""
    key, source = f"data.{name}", data.source
    unused = {}
    if source != "local":
        unused["path"] = f"only source local reads it ({key}.source is {source}); set {key}.source=local with it"
    if source != "sample":
        unused |= {
            field: f"only source sample reads it ({key}.source is {source}); set {key}.source=sample with it"
            for field in SAMPLE_KEYS if field in type(data).model_fields
        }
    return {f"{key}.{field}": why for field, why in unused.items()}


def unused_split_keys(name: str, brought: set[str]) -> dict[str, str]:
    """The keys of `split.<name>` the split never reads, given the parts the dataset brings (`val`, `test`), each
    with what to set instead."""
    key = f"split.{name}"
    unused = {}
    for part in DRAWN_PARTS:
        if part in brought:
            unused[f"{key}.{part}"] = (
                f"{name} brings its own {part} part, used as given; cap it with {key}.max_{part}_per_class instead"
            )
        else:
            unused[f"{key}.max_{part}_per_class"] = (
                f"{name} brings no {part} part to cap ({part} is drawn from the training pool); size it with "
                f"{key}.{part} instead"
            )
    return unused


def check_unused(unused: Mapping[str, str], locked: Mapping[str, Any] | None, raw: Mapping[str, Any],
                 switches: tuple[str, ...] = ()) -> None:
    """Stop when a key of `unused` changed since the stage's last run (`locked`, as `locked_params` reads it; `raw`,
    `Params.raw()`), unless one of `switches` changed too."""
    if not locked or any(changed_since(key, locked, raw) for key in switches):
        return
    problems = [
        f"{key}: changed since the last run, but {why} (as it is, the run would change nothing)"
        for key, why in unused.items()
        if changed_since(key, locked, raw)
    ]
    if problems:
        raise PipelineError("; ".join(problems))

"""Stage `settings`: a dataset's resolved `split`, `preprocess` and `aug` blocks, as files other stages depend on.

DVC gives every stage of a `foreach` the same params keys, and a key that params.yaml lacks is an error. But
`split.<name>` and `preprocess.<name>` are optional (a dataset without one gets the defaults), and a table's rows
are never augmented, so `-S aug.rotation=20` must not re-train the Iris MLP. So the blocks are params of this stage,
one per dataset, which writes each block with its defaults filled in (`aug`: `{}` for a table) to
`data/settings/<dataset>/`; split, preprocess and train depend on those files. A change re-runs this stage for
every dataset (a second each), rewrites only the files whose content changed, and so re-runs exactly the stages
that the change touches. The split file also holds `near_duplicates_found_by`, from the dataset's `audit` block (split looks
for near-duplicates when the audit does), so that switching the audit on re-runs the split.

A changed key that the dataset's source or parts never read (`data.<name>.path` while the source is `sample`, the
size of a part the dataset brings) stops the stage, naming what would make it count (`pipeline.config.unused`).

A top-level `aug.*` change reaches the train stages through this stage's aug.json, not through their params: so it
is checked here, before any file is written. A changed key that a model of this dataset sets in its own `aug` block
(or its `sample` budget) would change nothing for that model, and stops the stage with the key to set instead.
"""

from pipeline.config.params import Params
from pipeline.config.resolution import check_overrides, locked_params
from pipeline.config.unused import check_unused, unused_data_keys, unused_split_keys
from pipeline.core.atomic import write_json
from pipeline.core.paths import Paths
from pipeline.data.raw import read_samples
from pipeline.stages.command import dataset_named, stage_command


def settings(dataset: str, params: Params, paths: Paths) -> dict[str, dict]:
    """Write the dataset's resolved split, preprocess and aug blocks; returns them."""
    data = params.data[dataset]
    _check_unused_keys(dataset, params, paths)
    if data.kind == "images":
        _check_aug_overrides(dataset, params, paths)
    split = params.split[dataset]
    resolved = {
        "split": {
            **split.model_dump(mode="json"),
            "seed": split.draw_seed(params.seed),
            "near_duplicates_found_by": list(params.near_duplicates(dataset) or []) or None,
        },
        "preprocess": params.preprocess[dataset].model_dump(mode="json"),
        "aug": params.aug.model_dump(mode="json") if data.kind == "images" else {},
    }
    for block, values in resolved.items():
        write_json(paths.settings_file(dataset, block), values)
    return resolved


def _check_aug_overrides(dataset: str, params: Params, paths: Paths) -> None:
    """Stop before any work when a changed top-level `aug.*` key takes effect for no purpose in one of the
    dataset's models: its own `aug` block, unchanged since that model last trained, sets the key."""
    models = [model for model, block in params.models.items() if block.dataset == dataset]
    for model in models:
        check_overrides(params, model, locked_params(paths.lock_file(), f"train@{model}", f"settings@{dataset}"))


def _check_unused_keys(dataset: str, params: Params, paths: Paths) -> None:
    """Stop before any work when a changed key of the dataset's `data` or `split` block is one its source or its
    parts never read (`pipeline.config.unused`). The parts the dataset brings are read from its raw samples, when
    downloaded (a refusal only: nothing this stage writes depends on them)."""
    locked, raw = locked_params(paths.lock_file(), f"settings@{dataset}"), params.raw()
    unused = unused_data_keys(dataset, params.data[dataset])
    if paths.raw_samples(dataset).is_file() and params.data[dataset].kind == "images":
        brought = set(read_samples(paths, dataset)["part"]) & {"val", "test"}
        unused |= unused_split_keys(dataset, brought)
    check_unused(unused, locked, raw, switches=(f"data.{dataset}.source", f"data.{dataset}.builtin"))


def settings_named(dataset: str, params: Params) -> dict[str, dict]:
    """Write the resolved blocks of the dataset named, as its command does; returns them."""
    return settings(dataset_named(params, dataset), params, Paths())


if __name__ == "__main__":
    stage_command(settings_named)

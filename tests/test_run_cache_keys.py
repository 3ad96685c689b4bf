"""Every params key takes effect: changing any value a stage lists changes that stage's run-cache hash, computed by
DVC's own function. DVC's run cache leaves keys named `size` and `nfiles` out of the hash at any depth
(treeverse/dvc#10296), so a stage whose params differ only there is restored from the cache instead of run: these
tests keep every key of params.yaml, every key of the params schema and every dataset and model name out of that
hole, and prove the hole is where `RUN_CACHE_IGNORED` says."""

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo
from dvc.stage.cache import _get_cache_hash
from dvc.stage.serialize import _serialize_params_values
from pydantic import BaseModel

from pipeline.config.base import RUN_CACHE_IGNORED
from pipeline.config.params import Params, load_params
from tests.helpers.params import REPO

Path_ = tuple[str, ...]


@pytest.fixture(scope="module")
def stages() -> dict[str, tuple[dict[str, Any], bool]]:
    """Each stage of dvc.yaml (foreach expanded) that lists params: its params section as dvc.lock and the run cache
    record it, and whether DVC ever restores it from the run cache (not when an output persists)."""
    with Repo(str(REPO)) as repo:
        found = {}
        for stage in repo.index.stages:
            deps = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
            for dep in deps:
                dep.fill_values(dep.read_params())
            if deps:
                found[stage.addressing] = (_serialize_params_values(deps), not any(out.persist for out in stage.outs))
        return found


@pytest.fixture(scope="module")
def listed_params(stages: dict[str, tuple[dict[str, Any], bool]]) -> dict[str, dict[str, Any]]:
    return {name: params for name, (params, _) in stages.items()}


def run_cache_hash(params: dict[str, Any]) -> str:
    """The run-cache key of a stage with these params (and a fixed command), as DVC computes it."""
    return _get_cache_hash({"cmd": "python -m pipeline.stages.stage", "params": copy.deepcopy(params)}, key=True)


def leaves(node: Any, path: Path_ = ()) -> Iterator[Path_]:
    """The path of every leaf value under `node` (a list is one value)."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, str(key)))
    else:
        yield path


def changed(params: dict[str, Any], path: Path_) -> dict[str, Any]:
    """A copy of `params` with the value at `path` replaced."""
    copied = copy.deepcopy(params)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = ["changed", node[path[-1]]]
    return copied


def test_the_stages_that_read_params_list_them(listed_params: dict[str, dict[str, Any]]) -> None:
    assert {"settings@catsdogs", "train@catsdogs_cnn", "evaluate@cifar_cnn_bn"} <= set(listed_params)
    assert all(leaves(params) for params in listed_params.values())


def test_changing_any_listed_key_of_params_yaml_changes_its_stages_run_cache_hash(
    listed_params: dict[str, dict[str, Any]],
) -> None:
    ignored = [
        f"{stage}: {'.'.join(path[1:])}"
        for stage, params in listed_params.items()
        for path in leaves(params)
        if run_cache_hash(changed(params, path)) == run_cache_hash(params)
    ]
    assert not ignored
    keys = {".".join(path[1:]) for params in listed_params.values() for path in leaves(params)}
    assert {"preprocess.catsdogs.image_size", "split.catsdogs.train", "models.cifar_best.sample.epochs"} <= keys


def test_every_block_a_stage_lists_is_read_by_a_stage_the_run_cache_never_restores(
    stages: dict[str, tuple[dict[str, Any], bool]],
) -> None:
    """A key added to a block under a name the run cache ignores (a typo'd `size`) changes what `dvc status` sees but
    not the run-cache hash: a stage listing the block would be restored. A stage that always runs (persist outputs)
    and lists the same block reads the params file and refuses the key."""
    always_run = {
        (file, key) for params, cached in stages.values() if not cached for file, keys in params.items() for key in keys
    }
    blocks = {
        (file, key) for params, _ in stages.values() for file, keys in params.items()
        for key, value in keys.items() if isinstance(value, dict)
    }
    assert {("params.yaml", "preprocess"), ("params.yaml", "train"), ("params.yaml", "models.catsdogs_cnn")} <= blocks
    unread = [
        key for file, key in blocks
        if not any(file == read and (key == block or key.startswith(f"{block}.")) for read, block in always_run)
    ]
    assert not unread


def schema_keys(kind: Any, seen: set[type] | None = None) -> Iterator[str]:
    """Every field name of a params block and of the blocks inside it, through lists, dicts and unions."""
    seen = set() if seen is None else seen
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        if kind in seen:
            return
        seen.add(kind)
        for name, field in kind.model_fields.items():
            yield name
            yield from schema_keys(field.annotation, seen)
    for inner in getattr(kind, "__args__", ()):
        yield from schema_keys(inner, seen)


def every_block() -> list[type[BaseModel]]:
    from pipeline.config.archs import ARCH_ARGS
    from pipeline.config.datasets import BUILTIN_DATA, PreprocessParams, TablePreprocess

    return [Params, *ARCH_ARGS.values(), *BUILTIN_DATA.values(), PreprocessParams, TablePreprocess]


def test_no_key_of_the_params_schema_is_one_the_run_cache_ignores() -> None:
    keys = {key for block in every_block() for key in schema_keys(block)}
    assert {"image_size", "batch_size", "sample_per_class", "rotation", "dropout"} <= keys
    hidden = sorted(key for key in keys if run_cache_hash({"p": {key: 1}}) == run_cache_hash({"p": {key: 2}}))
    assert not hidden


@pytest.mark.parametrize("name", RUN_CACHE_IGNORED)
def test_the_names_refused_are_the_ones_the_run_cache_ignores(name: str) -> None:
    assert run_cache_hash({"preprocess": {"catsdogs": {name: 64}}}) == run_cache_hash(
        {"preprocess": {"catsdogs": {name: 80}}}
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("preprocess.catsdogs.size=64", "preprocess.catsdogs.size: renamed image_size (DVC's run cache"),
        ("+data.size={builtin: catsdogs}", "data.size: DVC's run cache ignores keys named 'size'"),
        ("+models.nfiles={dataset: catsdogs, arch: catsdogs_cnn}", "models.nfiles: DVC's run cache ignores"),
    ],
)
def test_a_key_or_name_the_run_cache_ignores_is_refused_naming_it(override: str, message: str) -> None:
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_params(REPO / "params.yaml", [override])

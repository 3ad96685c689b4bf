"""Where each of a model's resolved settings comes from, and the check that a changed key takes effect.

A model's setting can be set at up to three levels, the most specific winning: its block's `sample` budget (only
while the dataset's `source` is `sample`), its block, and the top-level `train`, `aug` or `evaluate` block (an
architecture arg has no top-level one); where none sets it, the class default applies. `resolved_keys` says, for
each setting of `Params.model(name)`, which params key its value came from; `settings_text` prints them and
`resolved_record` is the train stage's metrics file of them. `check_overrides` compares the params with the values
dvc.lock recorded for the stage's last run: a key that changed but is shadowed by a more specific one (that did not
change) would re-run the stage with nothing changed, so it stops the stage and names the key to set instead.
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from pipeline.config.datasets import TablePreprocess
from pipeline.config.params import ModelConfig, Params
from pipeline.config.training import TrainParams
from pipeline.core.errors import PipelineError

DEFAULT = "default"  # no params key sets it: the class default applies
TABLE_OFF = "off (table)"  # an image-only setting a table model ignores: cutmix is 0, evaluate.tta none
RESOLVED_PARAMS_FILE = "resolved_params.json"  # in the train stage's folder, metrics/<model>/train/
_TABLE_ONLY_OFF = ("cutmix", "evaluate.tta")
_MISSING = object()  # a key the mapping does not set


@dataclass(frozen=True)
class ResolvedKey:
    """One setting of a model as it trains: `key` as the model's settings name it (`epochs`, `aug.hflip`,
    `evaluate.tta`, `dropout`), its JSON value, and `source`, the dotted params key it came from (`train.epochs`,
    `models.cifar_cnn_bn.sample.epochs`), `default` or `off (table)`."""

    key: str
    value: Any
    source: str


@dataclass(frozen=True)
class _Candidate:
    """A params key that may set a setting; `active` is false for a `sample` key while the model trains on real
    data."""

    key: str
    active: bool


@dataclass(frozen=True)
class _Setting:
    """A setting, its value, and the params keys that may set it, most specific first."""

    key: str
    value: Any
    candidates: tuple[_Candidate, ...]
    table: bool

    def source(self, raw: Mapping[str, Any]) -> str:
        """The first active candidate the params set, `default` if none; `off (table)` where a table forces it."""
        given = next((c.key for c in self.candidates if c.active and _at(raw, c.key) is not _MISSING), DEFAULT)
        if self.table and self.key in _TABLE_ONLY_OFF:
            asked = _at(raw, given) if given != DEFAULT else self.value
            return TABLE_OFF if asked != self.value else given
        return given

    def rank(self, key: str) -> int:
        """The candidate's place, most specific first; past the end for `default`."""
        return next((i for i, c in enumerate(self.candidates) if c.key == key), len(self.candidates))


def resolved_keys(params: Params, model: str) -> list[ResolvedKey]:
    """Every setting of the model's resolved `ModelConfig` (architecture args, train, aug, evaluate) with the params
    key its value came from: what the train stage prints and records, and `pipeline params MODEL` shows."""
    raw = params.raw()
    return [ResolvedKey(s.key, s.value, s.source(raw)) for s in _settings(params, model)]


def settings_table(keys: list[ResolvedKey]) -> str:
    """The settings as a plain-text table of key, value and the params key it came from, for printing."""
    rows = [("key", "value", "from"), *((k.key, _text(k.value), k.source) for k in keys)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{key:<{widths[0]}}  {value:<{widths[1]}}  {source}".rstrip() for key, value, source in rows)


def sample_hint(params: Params, model: str) -> str | None:
    """The line that says a model trains on its sample budget, whose keys are the ones to set; None otherwise."""
    if not params.trains_on_sample(model) or not params.models[model].sample:
        return None
    return f"on the sample: keys from models.{model}.sample; set those to change this run"


def settings_text(params: Params, model: str, keys: list[ResolvedKey] | None = None) -> str:
    """What the train stage and `pipeline params MODEL` print: the model, its settings table (of `keys`, the
    model's `resolved_keys` where the caller has them already) and the sample hint."""
    table = settings_table(keys or resolved_keys(params, model))  # first: an unknown model is named as such
    block = params.models[model]
    lines = [f"{model}: {block.arch} on {block.dataset}", table]
    hint = sample_hint(params, model)
    return "\n".join([*lines, hint] if hint else lines)


def resolved_record(keys: list[ResolvedKey]) -> dict[str, Any]:
    """The train stage's metrics file of the settings (`dvc exp show`, `dvc metrics diff`): each value under its key,
    and its source under `from`. DVC shows numbers, strings and booleans and drops lists and nulls, so those are
    written as JSON text (`"[32, 64, 128]"`, `"null"`) and stay one column."""
    values = {k.key: v if isinstance(v := k.value, bool | int | float | str) else json.dumps(v) for k in keys}
    return {**values, "from": {k.key: k.source for k in keys}}


def read_lock(lock_path: Path, *stages: str) -> dict[str, Any] | None:
    """dvc.lock as a mapping; with `stages`, only their entries, each parsed alone (the file is large, and DVC writes
    a stage's entry as one block under `stages:`; the whole file is parsed where a block is not found that way).
    None when there is no dvc.lock (nothing has run yet)."""
    if not lock_path.is_file():
        return None
    text = lock_path.read_text()
    blocks = [_entry_block(text, stage) for stage in stages]
    if stages and all(blocks):
        text = "stages:\n" + "".join(blocks)
    try:
        return YAML(typ="safe").load(text)  # the C loader where there is one
    except YAMLError as exc:
        raise PipelineError(f"{lock_path}: not valid YAML: {exc}") from None


def _entry_block(text: str, stage: str) -> str:
    """The lines of `stage`'s entry in dvc.lock's text (its name two spaces in, its body deeper); "" if none."""
    match = re.search(rf"^  {re.escape(stage)}:\n(?:(?:   .*)?\n)*", text, re.MULTILINE)
    return match.group(0) if match else ""


def locked_params(lock_path: Path, *stages: str, params_file: str = "params.yaml") -> dict[str, Any] | None:
    """The params values dvc.lock recorded for the last run of `stages` (`{"train": {...}, "models.x": {...}}`, the
    later stage's entry winning where both have one); None when it has no entry for any (or there is no dvc.lock)."""
    recorded = (read_lock(lock_path, *stages) or {}).get("stages") or {}
    entries = [((recorded.get(stage) or {}).get("params") or {}).get(params_file) for stage in stages]
    found = [entry for entry in entries if entry is not None]
    return {key: value for entry in found for key, value in entry.items()} if found else None


def silent_overrides(params: Params, model: str, locked: Mapping[str, Any] | None) -> list[str]:
    """The keys changed since the stage's last run (`locked`, as `locked_params` reads them) that would change
    nothing in this model's run, because a more specific key that did not change shadows them, each as a message
    that names the key to set instead. Only the params entries dvc.lock recorded are compared."""
    if not locked:
        return []
    raw = params.raw()
    problems = []
    for setting in _settings(params, model):
        source = setting.source(raw)
        if source == TABLE_OFF or changed_since(source, locked, raw):
            continue
        for candidate in setting.candidates:
            shadowed = not candidate.active or setting.rank(candidate.key) > setting.rank(source)
            if shadowed and changed_since(candidate.key, locked, raw):
                problems.append(_refusal(params, model, setting, candidate.key, source, _at(raw, candidate.key)))
    return problems


def check_overrides(params: Params, model: str, locked: Mapping[str, Any] | None) -> None:
    """Stop the stage before any work when a changed key would not take effect (see `silent_overrides`)."""
    problems = silent_overrides(params, model, locked)
    if problems:
        raise PipelineError("; ".join(problems))


def _settings(params: Params, model: str) -> Iterator[_Setting]:
    """The model's settings in the order they print: architecture args, train, aug, evaluate."""
    config = params.model(model)
    block = f"models.{model}"
    sampled = params.trains_on_sample(model)
    table = isinstance(params.preprocess[config.dataset], TablePreprocess)

    def chain(name: str, nested: str = "", top: str = "") -> tuple[_Candidate, ...]:
        keys = [_Candidate(f"{block}.sample.{nested}{name}", sampled), _Candidate(f"{block}.{nested}{name}", True)]
        return (*keys, _Candidate(f"{top}.{name}", True)) if top else tuple(keys)

    for name, value in _values(config).items():
        group, _, leaf = name.rpartition(".")
        if group:
            yield _Setting(name, value, chain(leaf, f"{group}.", group), table)
        elif name in TrainParams.model_fields:
            yield _Setting(name, value, chain(name, top="train"), table)
        else:
            yield _Setting(name, value, chain(name), table)


def _values(config: ModelConfig) -> dict[str, Any]:
    """The resolved settings as JSON values, named as the model's settings name them (architecture args and train
    keys plain: no architecture has an arg named as a train key)."""
    return {
        **config.arch_args.model_dump(mode="json"),
        **config.train.model_dump(mode="json"),
        **{f"aug.{key}": value for key, value in config.aug.model_dump(mode="json").items()},
        **{f"evaluate.{key}": value for key, value in config.evaluate.model_dump(mode="json").items()},
    }


def changed_since(key: str, locked: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    """Whether a params key's value in `raw` (`Params.raw()`) differs from the one dvc.lock recorded (`locked`, as
    `locked_params` reads it); false where dvc.lock has no entry for it (the stage does not list it, or it is
    `default`)."""
    entry = next((e for e in locked if key == e or key.startswith(f"{e}.")), None)
    if entry is None:
        return False
    before = _at(locked[entry], key.removeprefix(entry).lstrip(".")) if key != entry else locked[entry]
    return before != _at(raw, key)


def _at(mapping: Any, dotted: str) -> Any:
    """The value at a dotted key of a nested mapping; `_MISSING` where it has none."""
    node = mapping
    for part in dotted.split(".") if dotted else []:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _refusal(params: Params, model: str, setting: _Setting, changed: str, source: str, new: Any) -> str:
    """Why a changed key has no effect on this run, and which key to set instead."""
    block = f"models.{model}"
    origin = f"data.{params.models[model].dataset}.source"
    target = source if source != DEFAULT else _block_key(setting)
    value = f"{source} ({_text(setting.value)})" if source != DEFAULT else f"the default ({_text(setting.value)})"
    uses = "is what evaluate uses" if setting.key.startswith("evaluate.") else "is what trains"
    what = f"{changed} changed to {_text(new)}" if new is not _MISSING else f"{changed} was removed"
    fix = f"set {target}={_text(new)} instead" if new is not _MISSING else f"put {changed} back or change {target}"
    if changed.startswith(f"{block}.sample.") and not params.trains_on_sample(model):
        now = getattr(params.data[params.models[model].dataset], "source", None)
        return (
            f"{what} since the last run, but {block}.sample applies only while {origin} is sample (it is {now}): "
            f"{value} {uses}: {fix}"
        )
    if source.startswith(f"{block}.sample."):
        own = changed == _block_key(setting)  # the key that trains once the source is the real data
        undo = f" (and put {changed} back)" if own and new is not _MISSING else ""
        switch = f", or switch {origin} to the real data" if own else ""
        return f"{what} since the last run, but on the sample ({origin}: sample) {value} {uses}: {fix}{undo}{switch}"
    return (
        f"{what} since the last run, but {value} sets this model's {setting.key}: {fix}, or remove {source} so "
        f"that {changed} applies"
    )


def _block_key(setting: _Setting) -> str:
    """The key of the setting in the model's own block (not its `sample` budget)."""
    return setting.candidates[1].key


def _text(value: Any) -> str:
    """A value as it is written after `-S key=`: a string bare, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)

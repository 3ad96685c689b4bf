"""Reading params YAML as DVC does, and `-S key=value` overrides as `dvc exp run -S` applies them."""

from typing import Any

from ruamel.yaml import YAML, YAMLError

from pipeline.core.errors import PipelineError


def read_yaml(text: str) -> Any:
    """YAML read as DVC reads params.yaml (YAML 1.2, ruamel): `1e-5`, which DVC writes for `-S lr=0.00001`, is a
    number, where a YAML 1.1 reader such as PyYAML would see a string."""
    return YAML(typ="safe", pure=True).load(text)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one `key=value`; `+key=value`, the form DVC needs to add a key a block lacks, works the same here."""
    key, sep, value = item.partition("=")
    key = key.removeprefix("+")
    if not sep or not key:
        raise PipelineError(f"override {item!r}: expected key=value, for example aug.rotation=20")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PipelineError(f"override {item!r}: {part!r} is not a block of params")
    try:
        node[leaf] = read_yaml(value)
    except YAMLError as exc:
        raise PipelineError(f"override {item!r}: the value is not valid YAML ({exc.__class__.__name__})") from None

"""The base of every params block, and the value types the blocks share."""

from typing import Annotated, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict

Probability = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=1)]
FromList = Strict(False)  # YAML has no tuples: a fixed-length field takes a list (its items stay strictly typed)
BlockT = TypeVar("BlockT", bound="Block")
# Keys DVC's run cache leaves out of a stage's hash, at any depth (treeverse/dvc#10296): a params key of this name
# would change nothing DVC compares, and a stage would be restored from the cache instead of run. No key, dataset or
# model may have one of these names.
RUN_CACHE_IGNORED = ("size", "nfiles")


class Block(BaseModel):
    """A params block: unknown keys are errors, values are immutable once read, and a value must have its field's
    type (`epochs: true` or `lr: "0.1"` is an error, not 1 or 0.1); an integer is a valid float."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    renamed: ClassVar[dict[str, str]] = {}  # an old key: its new name, refused with a message naming the new one

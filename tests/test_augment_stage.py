"""Stage `augment`: the `aug` block for an image dataset, nothing for a table, so only augmented models re-train."""

import json

from pipeline.config.training import AugParams
from pipeline.stages.augment import augment


def test_an_image_dataset_gets_the_aug_block_and_a_table_gets_none(paths):
    aug = AugParams(rotation=20, hflip=0.5)
    assert augment("catsdogs", aug, paths) == aug.model_dump(mode="json")
    assert json.loads(paths.augment_file("catsdogs").read_text())["rotation"] == 20
    assert augment("iris", aug, paths) == {}


def test_a_table_datasets_file_does_not_change_with_aug(paths):
    augment("iris", AugParams(), paths)
    before = paths.augment_file("iris").read_bytes()
    augment("iris", AugParams(rotation=45, zoom=0.2), paths)
    assert paths.augment_file("iris").read_bytes() == before

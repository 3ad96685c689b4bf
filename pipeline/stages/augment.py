"""Stage `augment`: the augmentation a dataset's models train with, as a file the train stages depend on.

DVC can only give every `train@<model>` stage the same params keys, and a table's rows are never augmented: were
`aug` a param of train, `-S aug.rotation=20` would re-train the Iris MLP for nothing. So `aug` is a param of this
stage, one per dataset, which writes the `aug` block for an image dataset and an empty block for a table. Train
depends on that file: a change of `aug` re-runs this stage everywhere (a second each), rewrites the image datasets'
files, leaves the tables' byte-identical, and so re-trains exactly the models that augment.
"""

from pipeline.config.training import AugParams
from pipeline.core.atomic import write_json
from pipeline.core.paths import Paths
from pipeline.data.specs import dataset_spec


def augment(dataset: str, aug: AugParams, paths: Paths) -> dict:
    """Write the augmentation settings that apply to `dataset`'s training images (none for a table); returns them."""
    settings = aug.model_dump(mode="json") if dataset_spec(dataset).kind == "images" else {}
    write_json(paths.augment_file(dataset), settings)
    return settings

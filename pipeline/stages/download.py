"""Stage `download`: bring a dataset's raw samples into the raw layout, `data/raw/<dataset>/` (see
`pipeline.data.raw`): `images.zip`, `samples.csv` and `index.json`.

Every image source is read as a tree of files in one of the layouts (`pipeline.data.layouts`) and written by the
same code: the user's folder, zip or tar (`source: local`), the built-in datasets' generated samples (`sample`), the
Kaggle dogs-vs-cats competition (`kaggle`), the official CIFAR-10 archive (`torchvision`) and any Hugging Face Hub
dataset (`hf`: its parquet shards, by id or in a folder; the commit read is recorded in `index.json`); see
`pipeline.data.sources.builtin`. Iris (`sklearn`, the copy scikit-learn ships) is written as a raw table. Every
image is judged from its header as it is read: an unusable one is kept with its reason (`samples.csv`'s `skip`
column), for the split to leave out, and a class with no usable image is refused, naming its folder. The folder
appears whole or not at all: a source that fails, or is refused, leaves the previous one in place.
"""

from pipeline.config.datasets import DataSource
from pipeline.config.params import Params
from pipeline.core.atomic import atomic_path
from pipeline.core.paths import Paths
from pipeline.data.ingest import ingest
from pipeline.data.raw import RawIndex
from pipeline.data.sources.builtin import open_source
from pipeline.data.tables import iris_frame, write_table
from pipeline.stages.command import dataset_named, stage_command


def download(dataset: str, data: DataSource, seed: int, paths: Paths) -> RawIndex:
    """Produce the dataset's raw folder from its configured source; returns what its index says."""
    with atomic_path(paths.raw_dir(dataset)) as folder:
        folder.mkdir()
        if data.kind == "table":
            return write_table(folder, iris_frame())
        with open_source(dataset, data, seed, folder.parent) as tree:  # scratch files inside the temporary copy
            return ingest(tree, data, f"data.{dataset}", folder)


def download_named(dataset: str, params: Params) -> str:
    """Download the dataset named, as its command does; the line it prints: samples, classes, layout, what was
    left out, the unusable images the split will leave out, the source's revision."""
    name, paths = dataset_named(params, dataset), Paths()
    index = download(name, params.data[name], params.seed, paths)
    left_out, unusable = _counted(index.ignored), _counted(index.unusable)
    return (
        f"{name}: {index.samples} samples of {len(index.classes)} classes ({', '.join(index.classes)}), "
        f"{index.layout} layout, in {paths.raw_dir(name)}"
        + (f"; left out: {left_out}" if left_out else "")
        + (f"; unusable, which the split leaves out: {unusable}" if unusable else "")
        + (f"; revision {index.revision}" if index.revision else "")
    )


def _counted(reasons: dict[str, int]) -> str:
    """`2 Thumbs.db, 1 not images`."""
    return ", ".join(f"{count} {reason}" for reason, count in reasons.items())


if __name__ == "__main__":
    stage_command(download_named)

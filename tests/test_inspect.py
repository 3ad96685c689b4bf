"""`pipeline inspect`: a dataset looked at before training on it (layout, classes, sizes, formats, unreadable and
duplicate files, ignored files) and the params blocks that declare it, written into params.yaml on request
(`--write NAME`) with its comments kept."""

import difflib
import shutil

import pytest
from typer.testing import CliRunner

from pipeline.analysis.inspect import inspect
from pipeline.onboarding.declare import aspect_range, dataset_name, suggested_side
from pipeline.cli.main import app
from pipeline.config.overrides import read_yaml
from pipeline.config.params import load_params, parse_params
from tests.helpers.image_trees import class_images, image, messy, write_tree
from tests.helpers.params import REPO

runner = CliRunner()
PETS = {"cat": 5, "dog": 3}
SMALL = """# tiny params
seed: 7
data:
  catsdogs: {source: sample, sample_per_class: 12}
split:
# the models
models:
  catsdogs_cnn: {dataset: catsdogs, arch: catsdogs_cnn}
# end
"""


@pytest.fixture
def messy_zip(tmp_path):
    return write_tree(tmp_path / "in", class_images(PETS) | messy("", "cat", "dog"), "zip")


def test_inspect_reads_headers_finds_unreadable_and_duplicate_files(messy_zip):
    found = inspect(messy_zip)
    assert found.listing.layout == "class_folders"
    assert found.unreadable == [
        ("cat/cut.jpg", "truncated JPEG (no end-of-image marker); download it again"),
        ("cat/empty.jpg", "empty file"),
    ]
    assert found.duplicates == [["cat/twin.jpg", "dog/twin copy.jpg"]]
    assert sorted(found.formats.items()) == [("JPEG", 9), ("PNG", 2)]
    assert len(found.sizes) == 11 and (12, 9) in found.sizes and (9, 9) in found.sizes
    assert found.color == "rgb"


def test_all_gray_images_suggest_gray_and_the_size_follows_the_median(tmp_path):
    files = {f"{cls}/{n}.png": image(n, 100 + n, 70 + n, ".png", gray=True) for cls in ("a", "b") for n in range(3)}
    found = inspect(write_tree(tmp_path, files, "tar.gz"))
    assert (found.color, found.side) == ("gray", 71)
    assert suggested_side(found.side) == 64
    assert [suggested_side(side) for side in (5, 32, 95, 96, 127, 4000)] == [32, 32, 64, 96, 96, 128]


def test_the_command_prints_the_findings_and_the_params_blocks(messy_zip):
    result = runner.invoke(app, ["inspect", str(messy_zip)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{messy_zip}: class_folders layout, 2 classes, 13 images" in out
    assert "cat          9" in out and "dog          4" in out
    assert "width   min 8, median 12, max 16 pixels" in out
    assert "formats JPEG 9, PNG 2 (colour)" in out
    assert "cat/empty.jpg: empty file" in out and "cat/cut.jpg: truncated JPEG" in out
    assert "cat/twin.jpg = dog/twin copy.jpg" in out
    assert "Thumbs.db: 2" in out and "__MACOSX/: 1" in out and "not images: 1" in out
    assert printed_blocks(out) == {
        "data": {"dataset": {"source": "local", "path": str(messy_zip), "layout": "class_folders", "classes": None}},
        "split": {"dataset": {"train": None, "val": 0.15, "test": 0.15}},
        "preprocess": {"dataset": {"image_size": 32, "color": "rgb", "resize": "squash", "normalize": True}},
        "models": {"dataset_cnn": {"dataset": "dataset", "arch": "catsdogs_cnn"}},
    }
    assert "imbalanced (largest class cat: 9 images, smallest dog: 4; 2.2x)" in out
    assert "consider train.class_weights: auto" in out


def test_split_folders_are_counted_per_part(tmp_path):
    files = class_images(PETS, "train/") | class_images({"cat": 2, "dog": 1}, "valid/", start=40)
    result = runner.invoke(app, ["inspect", str(write_tree(tmp_path, files, "folder")), "--layout", "split_folders"])
    assert result.exit_code == 0, result.output
    table = "class    train      val\ncat          5        2\ndog          3        1\ntotal        8        3"
    assert table in result.stdout


def test_a_class_with_no_usable_image_is_named_as_download_would_refuse_it(tmp_path):
    files = class_images(PETS) | {"cow/0.jpg": b"", "cow/1.jpg": b"not an image"}
    result = runner.invoke(app, ["inspect", str(write_tree(tmp_path, files, "folder"))])
    assert result.exit_code == 0, result.output
    refused = "classes download refuses (no usable image):\n  cow: 2 files, all skipped: 1 empty file, 1 not a"
    assert refused in result.stdout


def test_a_missing_path_is_one_error_line(tmp_path):
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nowhere.zip")])
    assert missing.exit_code == 1 and "nowhere.zip does not exist" in missing.stderr


def test_webp_and_bmp_images_are_read_like_the_others(tmp_path):
    kinds = ((0, ".webp"), (1, ".bmp"))
    files = {f"{cls}/{n}{suffix}": image(n, 9, 7, suffix) for cls in ("a", "b") for n, suffix in kinds}
    found = inspect(write_tree(tmp_path, files, "folder"))
    assert (found.unreadable, sorted(found.formats.items())) == ([], [("BMP", 2), ("WEBP", 2)])


def printed_blocks(out: str) -> dict:
    """The params blocks at the end of `pipeline inspect`'s output, read as DVC reads params.yaml."""
    return read_yaml(out[out.index("\ndata:") :].split("\nadded ")[0])


def repo_params(tmp_path):
    """A copy of the repository's params.yaml, and its text."""
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    return params, params.read_text()


def test_the_printed_blocks_complete_the_params(tmp_path, messy_zip):
    result = runner.invoke(app, ["inspect", str(messy_zip)])
    assert result.exit_code == 0, result.output
    raw = read_yaml((REPO / "params.yaml").read_text())
    for block, entries in printed_blocks(result.stdout).items():
        raw[block].update(entries)
    params = parse_params(raw)
    assert params.data["dataset"].path == str(messy_zip) and params.preprocess["dataset"].image_size == 32
    assert params.model("dataset_cnn").arch == "catsdogs_cnn"


def test_write_adds_the_blocks_and_keeps_everything_else_byte_for_byte(tmp_path, messy_zip):
    params, before = repo_params(tmp_path)
    result = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "added data.pets, split.pets, preprocess.pets, models.pets_cnn" in result.stdout
    assert result.stdout.endswith("then run:\n  uv run dvc repro evaluate@pets_cnn\n")
    after = params.read_text()
    diff = list(difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)))
    added = [line[2:] for line in diff if line.startswith("+ ")]
    assert not [line for line in diff if line.startswith("- ")]  # nothing removed or changed: only lines added
    assert "".join(line[2:] for line in diff if line.startswith("  ")) == before
    printed = result.stdout[result.stdout.index("\ndata:") + 1 : result.stdout.index("\nadded ")]
    entries = [line for line in printed.splitlines(keepends=True) if line.startswith(" ")]  # not the block keys
    assert sorted(line for line in added if line.strip()) == sorted(entries)  # the printed entries, comments and all
    assert "    classes: null\n\n# How each dataset is split" in after  # the next block's heading stays above it
    assert "    normalize: true\n\n# Training-time augmentation" in after
    assert after.endswith(before.rstrip("\n").rsplit("\n", 1)[-1] + "\n\n  # A first model on pets: the small catsdogs_cnn convnet (any size and "
                          "number of classes), train defaults\n  pets_cnn:\n    dataset: pets\n    arch: catsdogs_cnn\n")
    assert printed_blocks(result.stdout) == {
        block: {key: values} for block, entries in read_yaml(after).items() if isinstance(entries, dict)
        for key, values in entries.items() if key in ("pets", "pets_cnn")
    }


def test_the_written_params_load_with_the_path_made_absolute(tmp_path, monkeypatch):
    files = class_images({"cat": 4, "dog": 4})
    write_tree(tmp_path / "in", files, "folder")
    params, _ = repo_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["inspect", "in/dataset", "--write", "pets"])
    assert result.exit_code == 0, result.output
    loaded = load_params(params)
    assert loaded.data["pets"].path == str(tmp_path / "in" / "dataset")
    assert (loaded.data["pets"].layout, loaded.data["pets"].classes) == ("class_folders", None)
    assert loaded.split["pets"].val == 0.15 and loaded.preprocess["pets"].color == "rgb"
    assert loaded.model("pets_cnn").dataset == "pets"
    assert "balanced (largest class cat: 4 images, smallest dog: 4)" in result.stdout


def test_a_name_in_use_is_refused_before_any_image_is_read(tmp_path, messy_zip):
    params, before = repo_params(tmp_path)
    taken = runner.invoke(app, ["inspect", str(messy_zip), "--write", "catsdogs", "--params", str(params)])
    assert taken.exit_code == 1 and taken.stdout == ""
    assert taken.stderr.startswith(f"error: {params} already has data.catsdogs, split.catsdogs, preprocess.catsdogs, "
                                   "models.catsdogs_cnn; choose another NAME")
    assert runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)]).exit_code == 0
    written = params.read_text()
    again = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert again.exit_code == 1 and "already has data.pets, split.pets, preprocess.pets, models.pets_cnn" in again.stderr
    model = runner.invoke(app, ["inspect", str(messy_zip), "--write", "cifar", "--params", str(params)])
    assert model.exit_code == 1 and "already has models.cifar_cnn;" in model.stderr  # the model name it would add
    assert params.read_text() == written != before


def test_params_that_would_not_validate_are_left_as_they_are(tmp_path, messy_zip):
    params, before = repo_params(tmp_path)
    params.write_text(before.replace("seed: 42", "seed: -1"))
    result = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert result.exit_code == 1 and "--write pets: the blocks were not added" in result.stderr
    assert "seed" in result.stderr and params.read_text() == before.replace("seed: 42", "seed: -1")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in", "params.yaml"]  # no temporary file left


def test_blocks_a_params_file_lacks_are_added_whole(tmp_path, messy_zip):
    params = tmp_path / "small.yaml"
    params.write_text(SMALL)
    result = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(params)])
    assert result.exit_code == 0, result.output
    after = params.read_text()
    assert after.startswith("# tiny params\nseed: 7\ndata:\n  catsdogs: {source: sample, sample_per_class: 12}\n  pets:\n")
    assert "    test: 0.15\n# the models\nmodels:\n  catsdogs_cnn: {dataset: catsdogs, arch: catsdogs_cnn}\n\n" in after
    assert "    arch: catsdogs_cnn\npreprocess:\n  pets:\n" in after  # the missing block, at the end
    assert after.endswith("    normalize: true\n# end\n")  # the closing comment stays last
    loaded = load_params(params)
    assert list(loaded.data) == ["catsdogs", "pets"] and loaded.preprocess["pets"].image_size == 32
    assert list(loaded.models) == ["catsdogs_cnn", "pets_cnn"]


def test_a_bad_name_is_one_error_line(tmp_path, messy_zip):
    bad = runner.invoke(app, ["inspect", str(messy_zip), "--write", "My Pets", "--params", str(tmp_path / "p.yaml")])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: --write 'My Pets': a dataset name is lower-case")
    missing = runner.invoke(app, ["inspect", str(messy_zip), "--write", "pets", "--params", str(tmp_path / "p.yaml")])
    assert missing.exit_code == 1 and "p.yaml does not exist" in missing.stderr


def test_varied_aspect_ratios_are_cropped_alike_ones_squashed(tmp_path):
    wide = {f"{cls}/{n}.png": image(n, 90, 60, ".png") for cls in ("a", "b") for n in range(3)}
    mixed = wide | {f"{cls}/{n}.png": image(n, 60, 90, ".png") for cls in ("a", "b") for n in range(3, 6)}
    for files, resize in ((wide, "squash"), (mixed, "crop")):
        root = write_tree(tmp_path / resize, files, "folder")
        result = runner.invoke(app, ["inspect", str(root)])
        assert result.exit_code == 0, result.output
        assert printed_blocks(result.stdout)["preprocess"]["dataset"]["resize"] == resize
        assert f"# {resize}: " in result.stdout
    assert aspect_range([(90, 60)] * 8 + [(10, 100)]) == (1.5, 1.5)  # a few odd images do not decide
    assert aspect_range([]) == (1.0, 1.0)


def test_split_folders_say_which_parts_come_with_the_dataset(tmp_path):
    files = class_images(PETS, "train/") | class_images({"cat": 2, "dog": 1}, "valid/", start=40)
    result = runner.invoke(app, ["inspect", str(write_tree(tmp_path, files, "folder"))])
    assert result.exit_code == 0, result.output
    assert "# val/ comes with the dataset: used as given, so val below is unused (max_val_per_class caps it); " \
           "test is held out of train/" in result.stdout
    assert printed_blocks(result.stdout)["data"]["dataset"]["layout"] == "split_folders"


def test_a_dataset_name_is_derived_from_the_path(tmp_path):
    assert dataset_name(tmp_path / "kagglecatsanddogs_5340.zip") == "kagglecatsanddogs_5340"
    assert dataset_name(tmp_path / "Pet Images.tar.gz") == "pet_images"
    assert dataset_name(tmp_path / "101_ObjectCategories.tgz") == "data_101_objectcategories"


def test_the_audit_is_mentioned_until_the_dataset_has_a_block(tmp_path, messy_zip):
    params, _ = repo_params(tmp_path)
    result = runner.invoke(app, ["inspect", str(messy_zip), "--params", str(params)])
    assert "# No `audit.dataset` block yet" in result.stdout and "dvc repro audit@dataset" in result.stdout
    params.write_text(params.read_text().replace("audit:\n", "audit:\n  dataset: {label_issues: false}\n", 1))
    result = runner.invoke(app, ["inspect", str(messy_zip), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "audit.dataset" not in result.stdout

"""`pipeline dev deps`: dvc.yaml's code deps generated from the import graph, on a tiny package of its own."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.core.errors import PipelineError
from pipeline.upkeep.deps import code_deps, generated_dvc_yaml, stale_stages, write_deps

DVC_YAML = """\
# a comment that stays
stages:
  train:
    foreach: ${models}
    do:
      cmd: python -m pipeline.stages.train ${key}
      deps:
        - pipeline/old.py
        - data/processed/${item.dataset}
      outs:
        - models/${key}.pt
"""


def _module(root: Path, name: str, text: str = "") -> None:
    path = root / (name.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A package where `train` imports all of `a/` (one module inside its `__main__` guard) and one module of `b/`,
    `b.unused` is imported by no stage, and the command line (`cli/`) imports the stage."""
    for package in ("pipeline", "pipeline.cli", "pipeline.stages", "pipeline.a", "pipeline.b"):
        _module(tmp_path, f"{package}.__init__")
    _module(tmp_path, "pipeline.cli.stages", "import pipeline.a.one\n\ndef train():\n    import pipeline.stages.train\n")
    for stage in ("download", "settings", "split", "preprocess", "evaluate", "export"):
        _module(tmp_path, f"pipeline.stages.{stage}")
    _module(
        tmp_path, "pipeline.stages.train",
        "from pipeline.b.used import thing\n\nif __name__ == '__main__':\n    from pipeline.a import two\n",
    )
    _module(tmp_path, "pipeline.a.one")
    _module(tmp_path, "pipeline.a.two", "import pipeline.a.one\n")
    _module(tmp_path, "pipeline.b.used")
    _module(tmp_path, "pipeline.b.unused")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    return tmp_path


def test_a_folder_whose_every_module_is_imported_is_one_dep_and_the_rest_are_files(repo: Path) -> None:
    assert code_deps("pipeline.stages.train", repo) == [
        "pipeline/__init__.py",
        "pipeline/a",
        "pipeline/b/__init__.py",
        "pipeline/b/used.py",
        "pipeline/stages/__init__.py",
        "pipeline/stages/train.py",
    ]


def test_the_deps_start_from_the_module_the_stages_cmd_names(repo: Path) -> None:
    (repo / "dvc.yaml").write_text(DVC_YAML.replace("pipeline.stages.train", "pipeline.stages.export"))
    assert code_deps("pipeline.stages.export", repo) == ["pipeline/__init__.py", "pipeline/stages/__init__.py",
                                                         "pipeline/stages/export.py"]
    assert "        - pipeline/stages/export.py\n" in generated_dvc_yaml(repo)


def test_a_stage_whose_cmd_runs_no_module_of_the_package_is_an_error(repo: Path) -> None:
    (repo / "dvc.yaml").write_text(DVC_YAML.replace("python -m pipeline.stages.train", "python train.py"))
    with pytest.raises(PipelineError, match="write `python -m pipeline.stages.train ...`"):
        stale_stages(repo)


def test_generating_replaces_the_code_deps_and_keeps_the_rest(repo: Path) -> None:
    text = generated_dvc_yaml(repo)
    assert "pipeline/old.py" not in text
    assert text.startswith("# a comment that stays\n")
    assert "        - pipeline/a\n        - pipeline/b/__init__.py\n" in text
    assert text.index("pipeline/stages/train.py") < text.index("data/processed/${item.dataset}")


def test_stale_deps_are_named_and_written_once(repo: Path) -> None:
    assert stale_stages(repo) == ["train"]
    assert write_deps(repo) == ["train"]
    assert stale_stages(repo) == [] and write_deps(repo) == []
    _module(repo, "pipeline.b.used", "import pipeline.b.unused\n")  # a new import: now all of b/ is used
    assert stale_stages(repo) == ["train"]


def test_the_command_fails_on_stale_deps_and_rewrites_them_with_write(repo: Path) -> None:
    runner = CliRunner()
    stale = runner.invoke(app, ["dev", "deps", "--root", str(repo)])
    assert stale.exit_code == 1 and "train are stale; run `pipeline dev deps --write`" in stale.output
    written = runner.invoke(app, ["dev", "deps", "--write", "--root", str(repo)])
    assert written.exit_code == 0 and "rewritten for train" in written.output
    assert runner.invoke(app, ["dev", "deps", "--root", str(repo)]).exit_code == 0

"""What killed stages leave (temporary copies, checkpoints) is removed as the next stage starts, even when DVC
restored the killed stage from its run cache; what a process still writes is never touched."""

import os
import subprocess
import sys
import time

import pytest
import typer

from pipeline.cli.common import user_errors
from pipeline.core.atomic import DiskFullError, atomic_path, is_stale_copy, remove_stale_copies
from pipeline.core.leftovers import remove_leftovers
from pipeline.stages.command import rerun_command, start_clean
from tests.helpers.leftovers import checkpoint_left, copy_left, dead_pid


@pytest.fixture
def running():
    """A process that runs until the test ends."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_copy_left_by_a_process_that_is_gone_is_removed_and_one_still_written_is_kept(paths, running):
    target = paths.processed_dir("catsdogs")
    killed, own = copy_left(target, dead_pid()), copy_left(target, os.getpid())
    other = copy_left(paths.manifest_dir("catsdogs"), running.pid)

    assert remove_stale_copies(paths.root) == [killed]

    assert not killed.exists() and own.is_dir() and other.is_dir()


def test_a_copy_whose_pid_a_later_process_took_is_removed(paths, running):
    copy = copy_left(paths.processed_dir("catsdogs"), running.pid)
    assert not is_stale_copy(copy)

    os.utime(copy, (time.time() - 600, time.time() - 600))  # last changed before that process started

    assert is_stale_copy(copy)


def test_a_copy_of_a_killed_process_not_yet_reaped_is_removed(paths):
    zombie = subprocess.Popen(["true"])
    while os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:  # ended, not reaped
        time.sleep(0.01)
    copy = copy_left(paths.processed_dir("catsdogs"), zombie.pid)

    assert is_stale_copy(copy)
    zombie.wait()


def test_a_copy_named_before_copies_named_their_writer_is_removed_and_other_hidden_files_are_kept(paths):
    old = copy_left(paths.raw_dir("catsdogs"), None)
    kept = [paths.root / "data" / ".gitignore", paths.root / "data" / ".notes.tmp"]
    for path in kept:
        path.write_text("mine")

    assert remove_stale_copies(paths.root / "data") == [old]
    assert all(path.is_file() for path in kept)


def test_a_write_names_its_temporary_copy_for_its_process(tmp_path):
    with atomic_path(tmp_path / "result.json") as staged:
        staged.write_text("{}")
        assert staged.parent.name.startswith(f".result.json.{os.getpid()}_")
        assert not is_stale_copy(staged.parent)


def test_a_checkpoint_older_than_its_model_file_is_removed_with_the_one_before_it(paths):
    checkpoint = checkpoint_left(paths, "catsdogs_cnn")
    previous = checkpoint.with_name("catsdogs_cnn.prev.ckpt")
    previous.write_bytes(b"the one before")
    os.utime(previous, (time.time() - 120, time.time() - 120))

    removed = remove_leftovers(paths)

    assert removed == [f"{path} (older than {paths.model_file('catsdogs_cnn')}: its run is over)"
                       for path in (checkpoint, previous)]
    assert not checkpoint.exists() and not previous.exists()


def test_a_checkpoint_of_a_run_in_progress_or_cut_short_is_kept(paths):
    newer = checkpoint_left(paths, "catsdogs_cnn", before_its_model_file=False)
    alone = paths.checkpoint("cifar_cnn")
    alone.write_bytes(b"a run cut short: no model file yet")

    assert remove_leftovers(paths) == []
    assert newer.is_file() and alone.is_file()


def test_a_model_file_restored_as_a_hard_link_to_an_older_cache_file_makes_the_checkpoint_stale(paths):
    cached = paths.root / "cache-object"
    cached.write_bytes(b"a model")
    os.utime(cached, (time.time() - 3600, time.time() - 3600))
    checkpoint = checkpoint_left(paths, "catsdogs_cnn", before_its_model_file=False)
    os.utime(checkpoint, (time.time() - 60, time.time() - 60))
    paths.model_file("catsdogs_cnn").unlink()
    os.link(cached, paths.model_file("catsdogs_cnn"))  # as DVC links from its cache: an old mtime, a new ctime

    remove_leftovers(paths)

    assert not checkpoint.exists()


def test_a_stage_start_says_in_one_line_what_it_removed(paths, capsys):
    copy = copy_left(paths.processed_dir("catsdogs"), dead_pid())
    checkpoint = checkpoint_left(paths, "catsdogs_cnn")

    start_clean(paths)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("removed what killed runs left: ")
    assert str(copy) in lines[0] and str(checkpoint) in lines[0]
    start_clean(paths)
    assert capsys.readouterr().err == ""


def test_the_command_to_run_again_is_the_stages_dvc_repro_under_dvc_else_the_command_as_typed(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    typed = rerun_command("pipeline.stages.split", ["catsdogs", "-S", "split.catsdogs.val=0.2 "])
    assert typed == "python -m pipeline.stages.split catsdogs -S 'split.catsdogs.val=0.2 '"
    monkeypatch.setenv("DVC_STAGE", "split@catsdogs")
    assert rerun_command("pipeline.stages.split", ["catsdogs"]) == "dvc repro split@catsdogs"


def test_a_full_disk_names_the_command_to_run_again(tmp_path, monkeypatch, capsys):
    error = DiskFullError(tmp_path / "preds.csv")
    assert "run the same command again" in str(error)
    assert "run `dvc repro split@catsdogs` again" in str(error.naming_command("dvc repro split@catsdogs"))

    def full_disk() -> None:
        raise error

    monkeypatch.setattr(sys, "argv", ["pipeline", "predict", "catsdogs_cnn", "photos/", "--out", str(tmp_path)])
    with pytest.raises(typer.Exit):
        user_errors(full_disk)()
    assert f"run `pipeline predict catsdogs_cnn photos/ --out {tmp_path}` again" in capsys.readouterr().err

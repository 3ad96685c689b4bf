import logging
import sys
import types
from pathlib import Path

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.torchfile import read_torch_file
from pipeline.training.checkpoints import Checkpoint, code_digest, run_fingerprint
from tests.helpers.crafted import crafted_torch_file
from tests.helpers.params import tiny_raw

FINGERPRINT = "run-a"


class Run:
    """A tiny model with its optimizer and scheduler: the state a checkpoint carries."""

    def __init__(self) -> None:
        self.model = torch.nn.Linear(3, 2)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.5)

    def epoch(self, checkpoint: Checkpoint) -> None:
        """One step of training, then the end-of-epoch checkpoint."""
        self.model(torch.ones(4, 3)).sum().backward()
        self.optimizer.step()
        self.scheduler.step()
        checkpoint.history.append({"epoch": len(checkpoint.history) + 1})
        checkpoint.save(self.states())

    def states(self) -> dict:
        """The objects a checkpoint keeps, by name."""
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def weights(self) -> dict[str, torch.Tensor]:
        return {key: value.clone() for key, value in self.model.state_dict().items()}

    def restore(self, checkpoint: Checkpoint) -> int:
        return checkpoint.restore(self.states())


def trained(path: Path, epochs: int) -> list[dict[str, torch.Tensor]]:
    """Checkpoint `epochs` epochs at `path`; the weights after each."""
    run, checkpoint, weights = Run(), Checkpoint(path, FINGERPRINT), []
    for _ in range(epochs):
        run.epoch(checkpoint)
        weights.append(run.weights())
    return weights


def restored(path: Path) -> tuple[int, Run]:
    """A fresh run restored from the checkpoints at `path`: the epochs done and the run."""
    run = Run()
    return run.restore(Checkpoint(path, FINGERPRINT)), run


def assert_weights(run: Run, expected: dict[str, torch.Tensor]) -> None:
    assert all(torch.equal(value, expected[key]) for key, value in run.model.state_dict().items())


def loaded_module(name: str, source: Path) -> types.ModuleType:
    """A module as if imported from `source`, to be put in sys.modules."""
    module = types.ModuleType(name)
    module.__file__ = str(source)
    return module


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return tmp_path / "models" / "checkpoints" / "net.ckpt"


def test_saving_keeps_the_checkpoint_before_as_prev(ckpt):
    trained(ckpt, epochs=3)

    assert ckpt.with_name("net.prev.ckpt").is_file()
    assert sorted(path.name for path in ckpt.parent.iterdir()) == ["net.ckpt", "net.prev.ckpt"]
    assert read_torch_file(ckpt.with_name("net.prev.ckpt"), "checkpoint")["history"] == [{"epoch": 1}, {"epoch": 2}]


def test_the_latest_checkpoint_is_resumed(ckpt, caplog):
    weights = trained(ckpt, epochs=3)

    done, run = restored(ckpt)

    assert done == 3
    assert_weights(run, weights[-1])
    assert run.scheduler.last_epoch == 3
    assert caplog.records == []


def test_a_corrupt_last_checkpoint_resumes_from_the_one_before_with_a_warning(ckpt, caplog):
    weights = trained(ckpt, epochs=3)
    ckpt.write_bytes(ckpt.read_bytes()[:100])

    with caplog.at_level(logging.WARNING):
        done, run = restored(ckpt)

    assert done == 2
    assert_weights(run, weights[1])
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"{ckpt}: not a readable checkpoint" in record.message
    assert record.message.endswith(f"removed, resuming from {ckpt.with_name('net.prev.ckpt')}")
    assert not ckpt.exists()


def test_both_checkpoints_corrupt_starts_over_with_a_warning_naming_both(ckpt, caplog):
    trained(ckpt, epochs=2)
    for path in (ckpt, ckpt.with_name("net.prev.ckpt")):
        path.write_bytes(b"garbage")

    with caplog.at_level(logging.WARNING):
        done, run = restored(ckpt)

    assert done == 0
    [record] = caplog.records
    assert f"{ckpt}: not a readable checkpoint" in record.message
    assert f"{ckpt.with_name('net.prev.ckpt')}: not a readable checkpoint" in record.message
    assert record.message.endswith("removed, training starts over")
    assert list(ckpt.parent.iterdir()) == []


def test_after_falling_back_the_next_save_keeps_a_readable_checkpoint_before_it(ckpt):
    trained(ckpt, epochs=2)
    ckpt.write_bytes(b"garbage")
    run, checkpoint = Run(), Checkpoint(ckpt, FINGERPRINT)
    run.restore(checkpoint)

    run.epoch(checkpoint)

    assert read_torch_file(ckpt.with_name("net.prev.ckpt"), "checkpoint")["history"] == [{"epoch": 1}]
    assert read_torch_file(ckpt, "checkpoint")["history"] == [{"epoch": 1}, {"epoch": 2}]


def test_killed_between_rotating_and_writing_resumes_from_the_one_before(ckpt, caplog):
    weights = trained(ckpt, epochs=2)
    ckpt.unlink()

    done, run = restored(ckpt)

    assert done == 1
    assert_weights(run, weights[0])
    assert caplog.records == []


def test_a_checkpoint_of_another_run_is_removed_with_a_warning_and_training_starts_over(ckpt, caplog):
    trained(ckpt, epochs=2)

    with caplog.at_level(logging.WARNING):
        assert Run().restore(Checkpoint(ckpt, "run-b")) == 0

    [record] = caplog.records
    assert f"{ckpt}: a checkpoint of another run (its fingerprint differs" in record.message
    assert f"{ckpt.with_name('net.prev.ckpt')}: a checkpoint of another run" in record.message
    assert record.message.endswith("removed, training starts over")
    assert list(ckpt.parent.iterdir()) == []


def test_a_checkpoint_beyond_stop_after_is_removed_with_a_warning_and_the_one_before_resumed(ckpt, caplog):
    weights = trained(ckpt, epochs=3)

    run = Run()
    with caplog.at_level(logging.WARNING):
        assert run.restore(Checkpoint(ckpt, FINGERPRINT, stop_after=2)) == 2

    assert_weights(run, weights[1])
    [record] = caplog.records
    assert f"{ckpt}: holds 3 epochs, beyond train.stop_after 2" in record.message
    assert record.message.endswith(f"removed, resuming from {ckpt.with_name('net.prev.ckpt')}")
    assert not ckpt.exists()


def test_checkpoints_all_beyond_stop_after_start_over(ckpt):
    trained(ckpt, epochs=3)

    assert Run().restore(Checkpoint(ckpt, FINGERPRINT, stop_after=1)) == 0
    assert list(ckpt.parent.iterdir()) == []


def test_a_checkpoint_whose_state_does_not_load_starts_over_with_a_warning_and_the_run_untouched(ckpt, caplog):
    trained(ckpt, epochs=1)
    saved = read_torch_file(ckpt, "checkpoint")
    saved["model"]["weight"] = torch.zeros(5, 3)  # the bias still fits: a partial load must be undone
    torch.save(saved, ckpt)
    run = Run()
    fresh = run.weights()

    with caplog.at_level(logging.WARNING):
        assert run.restore(Checkpoint(ckpt, FINGERPRINT)) == 0

    assert_weights(run, fresh)
    assert run.scheduler.last_epoch == 0
    [record] = caplog.records
    assert record.message.startswith(f"warning: {ckpt}: its state does not load into this run (RuntimeError: ")
    assert "size mismatch for weight" in record.message
    assert "\n" not in record.message
    assert record.message.endswith("removed, training starts over")
    assert not ckpt.exists()


def test_a_checkpoint_missing_a_state_falls_back_to_the_one_before(ckpt, caplog):
    weights = trained(ckpt, epochs=2)
    saved = read_torch_file(ckpt, "checkpoint")
    del saved["optimizer"]
    torch.save(saved, ckpt)

    with caplog.at_level(logging.WARNING):
        done, run = restored(ckpt)

    assert done == 1
    assert_weights(run, weights[0])
    assert f"{ckpt}: not a checkpoint of this pipeline (optimizer: Field required)" in caplog.records[0].message


def test_the_code_digest_covers_the_loaded_pipeline_modules_and_the_torch_version(tmp_path, monkeypatch):
    source = tmp_path / "edited.py"
    source.write_text("WIDTH = 1\n")
    first = code_digest()
    monkeypatch.setitem(sys.modules, "pipelines_elsewhere", loaded_module("pipelines_elsewhere", source))
    assert code_digest() == first

    monkeypatch.setitem(sys.modules, "pipeline.edited", loaded_module("pipeline.edited", source))
    loaded = code_digest()
    source.write_text("WIDTH = 2\n")
    edited = code_digest()
    monkeypatch.setattr(torch, "__version__", "0.0.1")

    assert len({first, loaded, edited, code_digest()}) == 4


def test_the_fingerprint_leaves_out_the_worker_count_the_device_and_stop_after_but_not_the_other_settings():
    def fingerprint(**changes) -> str:
        return run_fingerprint(parse_params(tiny_raw(**changes)).model("catsdogs_cnn"), seed=7, data_files=[])

    plain = fingerprint()
    assert fingerprint(**{"train.workers": 2, "train.device": "auto"}) == plain
    assert fingerprint(**{"models.catsdogs_cnn.stop_after": 1}) == plain
    assert fingerprint(**{"train.lr": 0.01}) != plain


def test_a_crafted_checkpoint_is_refused_without_running_its_code(ckpt, tmp_path, caplog):
    weights = trained(ckpt, epochs=2)
    marker = tmp_path / "pwned"
    crafted_torch_file(ckpt, marker)

    with caplog.at_level(logging.WARNING):
        done, run = restored(ckpt)

    assert not marker.exists()
    assert not ckpt.exists()
    assert done == 1
    assert_weights(run, weights[0])
    assert f"{ckpt}: refused to load this checkpoint: it asks to run io.open" in caplog.records[0].message


def test_removing_drops_both_checkpoints(ckpt):
    trained(ckpt, epochs=2)

    Checkpoint(ckpt, FINGERPRINT).remove()

    assert list(ckpt.parent.iterdir()) == []

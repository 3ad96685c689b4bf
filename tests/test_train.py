import json
import math
import sys
import types

import pytest
import torch
from conftest import prepare, tiny_raw

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.core.runtime import Normalization
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import load_meta, load_split
from pipeline.models.file import load_model
from pipeline.models.outputs import loss, probabilities
from pipeline.stages.train import train
from pipeline.training.measure import measure
from pipeline.training.step import make_optimizer, penalized_weights, weight_penalty

CURVES = ("train/loss", "train/acc", "val/loss", "val/acc")


@pytest.fixture(autouse=True)
def _outside_any_repo(tmp_path, monkeypatch):
    """DVCLive looks for a DVC/Git repo from the working directory and may report to Studio: give it neither."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")


def _curve(paths: Paths, name: str) -> list[tuple[int, float]]:
    lines = (paths.train_dir("catsdogs_cnn") / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
    assert lines[0].split("\t")[0] == "step"
    return [(int(step), float(value)) for step, value in (line.split("\t")[:2] for line in lines[1:])]


def _outputs(paths: Paths) -> dict[str, bytes]:
    folder = paths.train_dir("catsdogs_cnn")
    files = [folder / "metrics.json", *(folder / "plots" / "metrics" / f"{name}.tsv" for name in CURVES)]
    return {str(path.relative_to(folder)): path.read_bytes() for path in files}


def test_train_saves_a_loadable_model_with_its_provenance(prepared, tiny_params):
    train("catsdogs_cnn", tiny_params, prepared)
    model, saved = load_model(prepared.model_file("catsdogs_cnn"))
    assert not model.training
    assert saved["model"] == saved["arch"] == "catsdogs_cnn"
    assert saved["dataset"] == "catsdogs"
    assert saved["classes"] == ["cat", "dog"]
    assert (saved["size"], saved["channels"], saved["seed"]) == (32, 1, 7)
    assert saved["arch_args"] == {"dropout": [0.25, 0.25, 0.5], "dense": 32}
    assert saved["train"]["epochs"] == 2
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 1)


def test_train_logs_one_row_per_epoch_for_every_curve(prepared, tiny_params):
    last = train("catsdogs_cnn", tiny_params, prepared)
    for name in CURVES:
        rows = _curve(prepared, name)
        assert [step for step, _ in rows] == [1, 2]
        assert all(math.isfinite(value) for _, value in rows)
        assert rows[-1][1] == pytest.approx(last[name])
    for name in ("train/acc", "val/acc"):
        assert all(0 <= value <= 1 for _, value in _curve(prepared, name))


def test_train_writes_dvclive_metrics_and_the_learning_curve_image(prepared, tiny_params):
    last = train("catsdogs_cnn", tiny_params, prepared)
    folder = prepared.train_dir("catsdogs_cnn")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train"]["loss"] == pytest.approx(last["train/loss"])
    assert metrics["val"]["acc"] == pytest.approx(last["val/acc"])
    best_epoch, best_loss = min(_curve(prepared, "val/loss"), key=lambda row: row[1])
    assert metrics["best"]["epoch"] == best_epoch  # train.monitor: val_loss by default
    assert metrics["best"]["val/loss"] == pytest.approx(best_loss)
    assert (folder / "plots" / "images" / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "plots" / "images" / "augmentation.png").read_bytes().startswith(b"\x89PNG")


def test_the_augmentation_preview_changes_with_the_aug_params(prepared, tiny_params):
    preview = prepared.train_dir("catsdogs_cnn") / "plots" / "images" / "augmentation.png"
    train("catsdogs_cnn", tiny_params, prepared)
    plain = preview.read_bytes()
    train("catsdogs_cnn", parse_params(tiny_raw(**{"aug.rotation": 30})), prepared)
    assert preview.read_bytes() != plain


def test_two_runs_with_the_same_params_give_identical_weights_and_metrics(prepared, tiny_params):
    train("catsdogs_cnn", tiny_params, prepared)
    first_weights = torch.load(prepared.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]
    first_outputs = _outputs(prepared)
    train("catsdogs_cnn", tiny_params, prepared)
    second_weights = torch.load(prepared.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)
    assert _outputs(prepared) == first_outputs


def test_a_different_seed_gives_different_weights(prepared, tiny_params):
    train("catsdogs_cnn", tiny_params, prepared)
    first = torch.load(prepared.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]
    train("catsdogs_cnn", parse_params(tiny_raw(seed=8)), prepared)
    second = torch.load(prepared.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]
    assert not torch.equal(first["0.0.weight"], second["0.0.weight"])


def test_sgd_optimizer_trains_and_is_recorded(prepared):
    params = parse_params(tiny_raw(**{"train.optimizer": "sgd", "train.lr": 0.01}))
    last = train("catsdogs_cnn", params, prepared)
    _, saved = load_model(prepared.model_file("catsdogs_cnn"))
    assert saved["train"]["optimizer"] == "sgd"
    assert all(math.isfinite(last[name]) for name in CURVES)


def test_make_optimizer_builds_sgd_with_momentum_and_weight_decay():
    raw = tiny_raw(**{"train.optimizer": "sgd", "train.lr": 0.05, "train.momentum": 0.5, "train.weight_decay": 0.01})
    settings = parse_params(raw).model("catsdogs_cnn").train
    optimizer = make_optimizer(torch.nn.Linear(2, 1).parameters(), settings)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.5, 0.01)


def test_make_optimizer_defaults_to_adam(tiny_params):
    optimizer = make_optimizer(torch.nn.Linear(2, 1).parameters(), tiny_params.model("catsdogs_cnn").train)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.001


def test_training_loss_falls_on_a_learnable_sample(paths):
    """Standardised images and no dropout: the loss leaves chance (ln 2 = 0.69) in the first epochs, whatever the
    CPU's kernels or threads (unstandardised, it sits at chance for as many epochs as the numerics decide). The
    last three epochs average 0.04 here, at most 0.30 with other seeds, two threads or oneDNN off; a model that
    does not learn stays at 0.69."""
    raw = tiny_raw(
        **{
            "data.catsdogs.sample_per_class": 40,
            "split.catsdogs": {"train": 30, "val": 5, "test": 5},
            "preprocess.catsdogs.normalize": True,
            "train.batch_size": 4,
            "models.catsdogs_cnn.epochs": 16,
            "models.catsdogs_cnn.dropout": [0, 0, 0],
        }
    )
    params = parse_params(raw)
    train("catsdogs_cnn", params, prepare(paths, params, "catsdogs"))
    losses = [value for _, value in _curve(paths, "train/loss")]
    assert len(losses) == 16
    assert losses[0] > 0.65
    assert sum(losses[-3:]) / 3 < 0.4


def _weights(paths: Paths) -> dict[str, torch.Tensor]:
    return torch.load(paths.model_file("catsdogs_cnn"), weights_only=True)["state_dict"]


class _Killed(Exception):
    """Stands in for the process dying mid-run."""


def _train_killed_in_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int, params, paths: Paths) -> None:
    """Train until the given epoch is nearly done, then die as a killed process would (no cleanup, no model)."""
    import pipeline.training.loop as stage

    real, calls = stage.measure, []

    def measure(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise _Killed
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stage, "measure", measure)
        with pytest.raises(_Killed):
            train("catsdogs_cnn", params, paths)


AUGMENTED = {"models.catsdogs_cnn.epochs": 3, "aug.rotation": 15, "aug.hflip": 0.5, "train.optimizer": "sgd"}


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_with_the_same_weights(prepared, monkeypatch):
    params = parse_params(tiny_raw(**AUGMENTED))
    train("catsdogs_cnn", params, prepared)
    uninterrupted, outputs = _weights(prepared), _outputs(prepared)
    prepared.model_file("catsdogs_cnn").unlink()

    _train_killed_in_epoch(monkeypatch, 3, params, prepared)
    assert prepared.checkpoint("catsdogs_cnn").is_file()
    assert not prepared.model_file("catsdogs_cnn").exists()

    last = train("catsdogs_cnn", params, prepared)
    assert last["resumed_from_epoch"] == 2
    resumed = _weights(prepared)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)
    assert _outputs(prepared) == outputs
    assert [step for step, _ in _curve(prepared, "val/acc")] == [1, 2, 3]
    assert not prepared.checkpoint("catsdogs_cnn").exists()


def test_a_checkpoint_of_other_params_is_not_resumed(prepared, monkeypatch):
    _train_killed_in_epoch(monkeypatch, 2, parse_params(tiny_raw(**AUGMENTED)), prepared)
    other = parse_params(tiny_raw(**{**AUGMENTED, "train.lr": 0.05}))
    assert train("catsdogs_cnn", other, prepared)["resumed_from_epoch"] == 0


def test_a_checkpoint_of_other_code_is_not_resumed_and_a_warning_names_it(prepared, tiny_params, monkeypatch, caplog):
    model_code = prepared.root / "edited_model.py"
    model_code.write_text("WIDTH = 32\n")
    edited = types.ModuleType("pipeline.models.edited")
    edited.__file__ = str(model_code)
    monkeypatch.setitem(sys.modules, edited.__name__, edited)
    _train_killed_in_epoch(monkeypatch, 2, tiny_params, prepared)
    model_code.write_text("WIDTH = 64\n")

    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0
    checkpoint = prepared.checkpoint("catsdogs_cnn")
    assert f"{checkpoint}: a checkpoint of another run (its fingerprint differs" in caplog.text
    assert "removed, training starts over" in caplog.text


def test_a_checkpoint_whose_state_does_not_load_is_a_warning_and_training_starts_over(
    prepared, tiny_params, monkeypatch, caplog
):
    _train_killed_in_epoch(monkeypatch, 2, tiny_params, prepared)
    checkpoint = prepared.checkpoint("catsdogs_cnn")
    saved = read_torch_file(checkpoint, "checkpoint")
    saved["model"]["0.0.weight"] = torch.zeros(1)
    torch.save(saved, checkpoint)

    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0
    assert f"{checkpoint}: its state does not load into this run (RuntimeError: " in caplog.text
    assert "removed, training starts over" in caplog.text


def test_an_unreadable_checkpoint_is_ignored(prepared, tiny_params):
    prepared.checkpoint("catsdogs_cnn").parent.mkdir(parents=True)
    prepared.checkpoint("catsdogs_cnn").write_bytes(b"half a checkpoint")
    assert train("catsdogs_cnn", tiny_params, prepared)["resumed_from_epoch"] == 0


def test_a_corrupt_last_checkpoint_is_a_warning_and_training_resumes_from_the_one_before(
    prepared, monkeypatch, caplog
):
    params = parse_params(tiny_raw(**AUGMENTED))
    _train_killed_in_epoch(monkeypatch, 3, params, prepared)
    latest = prepared.checkpoint("catsdogs_cnn")
    latest.write_bytes(latest.read_bytes()[:-100])

    last = train("catsdogs_cnn", params, prepared)

    assert last["resumed_from_epoch"] == 1
    assert f"{latest}: not a readable checkpoint" in caplog.text
    assert [step for step, _ in _curve(prepared, "val/acc")] == [1, 2, 3]


def test_l1_penalty_shrinks_the_weights(prepared):
    plain = parse_params(tiny_raw(**{"train.optimizer": "sgd", "train.lr": 0.01}))
    train("catsdogs_cnn", plain, prepared)
    without = sum(w.abs().sum() for w in _weights(prepared).values())
    train("catsdogs_cnn", parse_params(tiny_raw(**{"train.optimizer": "sgd", "train.lr": 0.01, "train.l1": 0.01})), prepared)
    assert sum(w.abs().sum() for w in _weights(prepared).values()) < without


def test_penalties_are_logged_apart_from_the_data_loss(prepared):
    plain = train("catsdogs_cnn", parse_params(tiny_raw()), prepared)
    assert plain["train/penalty"] == 0
    heavy = train("catsdogs_cnn", parse_params(tiny_raw(**{"train.l2": 1.0, "train.l1": 0.1})), prepared)
    assert heavy["train/penalty"] > 10 * heavy["train/loss"]
    assert heavy["train/loss"] < 5
    assert [step for step, value in _curve(prepared, "train/penalty") if value > 0] == [1, 2]


def test_l2_penalty_shrinks_the_weights(prepared):
    sgd = {"train.optimizer": "sgd", "train.lr": 0.01}
    train("catsdogs_cnn", parse_params(tiny_raw(**sgd)), prepared)
    without = sum(w.square().sum() for w in _weights(prepared).values())
    train("catsdogs_cnn", parse_params(tiny_raw(**sgd, **{"train.l2": 0.01})), prepared)
    assert sum(w.square().sum() for w in _weights(prepared).values()) < without


def test_weight_penalty_is_l1_times_abs_sum_plus_l2_times_square_sum():
    kernels = [torch.tensor([[1.0, -2.0]]), torch.tensor([[[3.0]]])]
    assert weight_penalty(kernels, 0.5, 0.0).item() == pytest.approx(0.5 * 6)
    assert weight_penalty(kernels, 0.0, 0.1).item() == pytest.approx(0.1 * 14)
    assert weight_penalty(kernels, 0.5, 0.1).item() == pytest.approx(3 + 1.4)


def test_only_conv_and_dense_kernels_are_penalized():
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(1))
    model(torch.zeros(1, 1, 5, 5))
    assert [tuple(w.shape) for w in penalized_weights(model)] == [(2, 1, 3, 3), (1, 18)]


def test_a_model_that_cannot_be_built_is_an_error_naming_its_params_block(prepared):
    params = parse_params(tiny_raw(**{"models.gray_vgg": {"dataset": "catsdogs", "arch": "vgg16", "pretrained": True}}))
    with pytest.raises(PipelineError, match=r"^models\.gray_vgg: vgg16 with pretrained ImageNet weights needs RGB"):
        train("gray_vgg", params, prepared)


def test_train_logs_true_class_confidence_per_epoch(prepared, tiny_params):
    last = train("catsdogs_cnn", tiny_params, prepared)
    for split_name in ("train", "val"):
        for figure in ("p_true/q10", "p_true/q50", "p_true/q90", "near_boundary"):
            rows = _curve(prepared, f"{split_name}/{figure}")
            assert [step for step, _ in rows] == [1, 2]
            assert all(0 <= value <= 1 for _, value in rows)
            assert rows[-1][1] == pytest.approx(last[f"{split_name}/{figure}"])
    assert last["val/p_true/q10"] <= last["val/p_true/q50"] <= last["val/p_true/q90"]


BN_MODEL = {"dataset": "catsdogs", "arch": "cifar_cnn", "widths": [4, 4, 4], "dense": 8, "batchnorm": True}


def test_a_model_with_batchnorm_records_its_train_and_eval_mode_gap(prepared):
    params = parse_params(tiny_raw(**{"models.bn_cnn": BN_MODEL}))
    last = train("bn_cnn", params, prepared)
    check = json.loads((prepared.train_dir("bn_cnn") / "metrics.json").read_text())["bn_check"]
    assert check == pytest.approx(last["bn_check"])
    assert check["train_mode_acc"] == pytest.approx(last["train/acc"])
    model, _ = load_model(prepared.model_file("bn_cnn"))
    train_split = load_split(prepared, "catsdogs", "train")
    eval_loss, eval_acc = _scored(model, train_split)
    assert check["eval_mode_acc"] == pytest.approx(eval_acc)
    assert check["eval_mode_loss"] == pytest.approx(eval_loss, rel=1e-4)
    assert check["acc_gap"] == pytest.approx(check["train_mode_acc"] - eval_acc)


def test_a_model_without_batchnorm_has_no_mode_check(prepared, tiny_params):
    assert "bn_check" not in train("catsdogs_cnn", tiny_params, prepared)
    assert "bn_check" not in json.loads((prepared.train_dir("catsdogs_cnn") / "metrics.json").read_text())


def _scored(model: torch.nn.Module, arrays) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(arrays.inputs).permute(0, 3, 1, 2).float() / 255)
    labels = torch.from_numpy(arrays.labels)
    return loss(logits, labels).item(), (probabilities(logits).argmax(1) == labels).float().mean().item()


def test_a_split_kept_on_the_device_trains_with_its_batched_augmentation(prepared):
    raw = tiny_raw(**{"train.data_on_device": True, "aug.crop_padding": 2, "aug.hflip": 0.5})
    last = train("catsdogs_cnn", parse_params(raw), prepared)
    assert math.isfinite(last["train/loss"]) and 0 <= last["val/acc"] <= 1
    assert (prepared.train_dir("catsdogs_cnn") / "plots" / "images" / "augmentation.png").is_file()


def _val_losses_and_model(paths: Paths, raw: dict) -> tuple[list[float], dict]:
    """Train with the given params; the per-epoch validation losses and the saved model file's contents."""
    train("catsdogs_cnn", parse_params(raw), paths)
    saved = torch.load(paths.model_file("catsdogs_cnn"), weights_only=True)
    return [value for _, value in _curve(paths, "val/loss")], saved


def test_the_kept_model_is_the_epoch_with_the_best_validation_loss(prepared):
    # Three sound epochs, then one at a learning rate that wrecks the model: the last epoch is never the best.
    wreck = [{"lr": 0.001, "epochs": 3}, {"lr": 50.0, "epochs": 1}]
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 4, "train.lr_schedule": wreck})
    losses, saved = _val_losses_and_model(prepared, raw)
    best = 1 + losses.index(min(losses))
    assert best != len(losses)
    assert saved["epoch"] == best and saved["kept"] == "best"
    model, _ = load_model(prepared.model_file("catsdogs_cnn"))
    val = load_split(prepared, "catsdogs", "val")
    normalization = Normalization.from_meta(load_meta(prepared, "catsdogs"))
    assert measure(model, val, 4, torch.device("cpu"), normalization).loss == pytest.approx(min(losses), rel=1e-5)


def test_keep_last_keeps_the_last_epoch(prepared):
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 3, "train.keep": "last"})
    losses, saved = _val_losses_and_model(prepared, raw)
    assert saved["epoch"] == 3 and saved["kept"] == "last"


def test_monitor_val_acc_keeps_the_first_epoch_with_the_best_validation_accuracy(prepared):
    raw = tiny_raw(**{"models.catsdogs_cnn.epochs": 4, "train.monitor": "val_acc"})
    _, saved = _val_losses_and_model(prepared, raw)
    accuracies = [acc for _, acc in _curve(prepared, "val/acc")]
    assert saved["epoch"] == 1 + accuracies.index(max(accuracies))


WORKERS = {"aug.hflip": 0.5, "train.workers": 2}  # the tiny model has dropout


@pytest.mark.slow
def test_a_killed_run_with_worker_processes_resumes_to_the_same_weights(prepared, monkeypatch):
    params = parse_params(tiny_raw(**WORKERS))
    train("catsdogs_cnn", params, prepared)
    uninterrupted = _weights(prepared)

    _train_killed_in_epoch(monkeypatch, 2, params, prepared)
    last = train("catsdogs_cnn", params, prepared)

    assert last["resumed_from_epoch"] == 1
    resumed = _weights(prepared)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)


@pytest.mark.slow
def test_worker_processes_do_not_change_the_weights(prepared):
    train("catsdogs_cnn", parse_params(tiny_raw(**{**WORKERS, "train.workers": 0})), prepared)
    alone = _weights(prepared)
    train("catsdogs_cnn", parse_params(tiny_raw(**WORKERS)), prepared)
    with_workers = _weights(prepared)
    assert all(torch.equal(alone[key], with_workers[key]) for key in alone)


def test_class_weights_auto_weighs_the_training_loss_by_inverse_class_frequency(prepared, monkeypatch):
    import pipeline.training.loop as loop

    seen = []
    real = loop.training_step

    def recording(*args, **kwargs):
        seen.append(args[6])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "training_step", recording)
    train("catsdogs_cnn", parse_params(tiny_raw(**{"train.class_weights": "auto"})), prepared)
    labels = torch.from_numpy(load_split(prepared, "catsdogs", "train").labels)
    counts = torch.bincount(labels, minlength=2).float()
    assert seen and all(torch.allclose(weights, len(labels) / (2 * counts)) for weights in seen)

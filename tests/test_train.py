import json
import math

import pytest
import torch

from pipeline.config.params import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.torchfile import read_torch_file
from pipeline.data.store import SplitArrays, load_split
from pipeline.models.file import load_model
from pipeline.models.outputs import loss, probabilities
import pipeline.stages.train as stage
from pipeline.stages.train import train
from tests.helpers.params import tiny_raw
from tests.helpers.train_runs import CURVES, curve, outputs, weights

pytestmark = pytest.mark.usefixtures("outside_any_repo")


def test_train_saves_a_loadable_model_with_its_provenance(tiny_run):
    prepared, _ = tiny_run
    model, saved = load_model(prepared.model_file("catsdogs_cnn"))
    assert not model.training
    assert saved.model == saved.arch == "catsdogs_cnn"
    assert saved.dataset == "catsdogs"
    assert saved.classes == ["cat", "dog"]
    assert (saved.size, saved.channels, saved.seed) == (32, 1, 7)
    assert saved.arch_args == {"dropout": [0.25, 0.25, 0.5], "dense": 32}
    assert saved.train["epochs"] == 2
    meta = json.loads((prepared.processed_dir("catsdogs") / "meta.json").read_text())
    assert read_torch_file(prepared.model_file("catsdogs_cnn"), "model file")["format"] == 2
    assert saved.preprocessing == {key: meta[key] for key in saved.preprocessing}
    assert set(saved.preprocessing) == {"size", "color", "resize", "normalize", "mean", "std", "classes"}
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 1)


def test_train_logs_one_row_per_epoch_for_everycurve(tiny_run):
    prepared, last = tiny_run
    for name in CURVES:
        rows = curve(prepared, name)
        assert [step for step, _ in rows] == [1, 2]
        assert all(math.isfinite(value) for _, value in rows)
        assert rows[-1][1] == pytest.approx(last[name])
    for name in ("train/acc", "val/acc"):
        assert all(0 <= value <= 1 for _, value in curve(prepared, name))


def test_train_writes_dvclive_metrics_and_the_learning_curve_image(tiny_run):
    prepared, last = tiny_run
    folder = prepared.train_dir("catsdogs_cnn")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["train"]["loss"] == pytest.approx(last["train/loss"])
    assert metrics["val"]["acc"] == pytest.approx(last["val/acc"])
    best_epoch, best_loss = min(curve(prepared, "val/loss"), key=lambda row: row[1])
    assert metrics["best"]["epoch"] == best_epoch  # train.monitor: val_loss by default
    assert metrics["best"]["val/loss"] == pytest.approx(best_loss)
    assert (folder / "plots" / "images" / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "plots" / "images" / "augmentation.png").read_bytes().startswith(b"\x89PNG")


def test_the_augmentation_preview_changes_with_the_aug_params(trained):
    preview = trained.train_dir("catsdogs_cnn") / "plots" / "images" / "augmentation.png"
    plain = preview.read_bytes()  # drawn by the tiny run, aug off
    train("catsdogs_cnn", parse_params(tiny_raw(**{"aug.rotation": 30})), trained)
    assert preview.read_bytes() != plain


def test_two_runs_with_the_same_params_give_identical_weights_and_metrics(tiny_run, trained, tiny_params):
    first, _ = tiny_run
    train("catsdogs_cnn", tiny_params, trained)  # the second run, over a copy of the first
    first_weights, second_weights = weights(first), weights(trained)
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)
    assert outputs(trained) == outputs(first)


def test_a_different_seed_gives_different_weights(tiny_run, trained):
    train("catsdogs_cnn", parse_params(tiny_raw(seed=8)), trained)
    assert not torch.equal(weights(tiny_run[0])["0.0.weight"], weights(trained)["0.0.weight"])


def test_train_logs_true_class_confidence_per_epoch(tiny_run):
    prepared, last = tiny_run
    for split_name in ("train", "val"):
        for figure in ("p_true/q10", "p_true/q50", "p_true/q90", "near_boundary"):
            rows = curve(prepared, f"{split_name}/{figure}")
            assert [step for step, _ in rows] == [1, 2]
            assert all(0 <= value <= 1 for _, value in rows)
            assert rows[-1][1] == pytest.approx(last[f"{split_name}/{figure}"])
    assert last["val/p_true/q10"] <= last["val/p_true/q50"] <= last["val/p_true/q90"]


BN_MODEL = {"dataset": "catsdogs", "arch": "cifar_cnn", "widths": [4, 4, 4], "dense": 8, "batchnorm": True}


def test_a_model_with_batchnorm_records_its_train_and_eval_mode_gap(prepared, monkeypatch):
    monkeypatch.setattr(stage, "MODE_CHECK_SAMPLES", 5)  # eval mode scores the training split's first 5 images
    params = parse_params(tiny_raw(**{"models.bn_cnn": BN_MODEL}))
    last = train("bn_cnn", params, prepared)
    check = json.loads((prepared.train_dir("bn_cnn") / "metrics.json").read_text())["bn_check"]
    assert check == pytest.approx(last["bn_check"])
    assert check["train_mode_acc"] == pytest.approx(last["train/acc"])
    model, _ = load_model(prepared.model_file("bn_cnn"))
    train_split = load_split(prepared, "catsdogs", "train")
    assert len(train_split.labels) > 5
    eval_loss, eval_acc = _scored(model, SplitArrays(train_split.inputs[:5], train_split.labels[:5]))
    assert check["eval_mode_acc"] == pytest.approx(eval_acc)
    assert check["eval_mode_loss"] == pytest.approx(eval_loss, rel=1e-4)
    assert check["acc_gap"] == pytest.approx(check["train_mode_acc"] - eval_acc)


def test_a_model_without_batchnorm_has_no_mode_check(tiny_run):
    prepared, last = tiny_run
    assert "bn_check" not in last
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


def test_class_weights_auto_weighs_the_training_loss_by_inverse_class_frequency(prepared, monkeypatch):
    import pipeline.stages.train as stage

    seen = []
    real = stage.train_step

    def recording(model, recipe, inputs, targets):
        seen.append(recipe.class_weights)
        return real(model, recipe, inputs, targets)

    monkeypatch.setattr(stage, "train_step", recording)
    train("catsdogs_cnn", parse_params(tiny_raw(**{"train.class_weights": "auto"})), prepared)
    labels = torch.from_numpy(load_split(prepared, "catsdogs", "train").labels)
    counts = torch.bincount(labels, minlength=2).float()
    assert seen and all(torch.allclose(weights, len(labels) / (2 * counts)) for weights in seen)


def test_train_records_the_settings_that_ran_with_where_each_came_from(tiny_run):
    prepared, _ = tiny_run
    resolved = json.loads((prepared.train_dir("catsdogs_cnn") / "resolved_params.json").read_text())
    assert resolved["epochs"] == 2 and resolved["from"]["epochs"] == "models.catsdogs_cnn.epochs"
    assert resolved["batch_size"] == 4 and resolved["from"]["batch_size"] == "train.batch_size"
    assert resolved["dropout"] == "[0.25, 0.25, 0.5]"  # a list as JSON text: DVC shows no list


def test_train_prints_the_settings_table_before_it_trains(prepared, capsys):
    train("catsdogs_cnn", parse_params(tiny_raw(**{"models.catsdogs_cnn.epochs": 1})), prepared)
    printed = capsys.readouterr().err
    assert "catsdogs_cnn: catsdogs_cnn on catsdogs" in printed
    assert any(line.split()[:3] == ["epochs", "1", "models.catsdogs_cnn.epochs"] for line in printed.splitlines())


def test_a_changed_key_the_sample_budget_shadows_stops_the_stage_before_any_work(prepared):
    raw = tiny_raw(**{"models.catsdogs_cnn.sample": {"epochs": 1}})
    prepared.lock_file().write_text(json.dumps({"stages": {"train@catsdogs_cnn": {"params": {"params.yaml": {
        "models.catsdogs_cnn": raw["models"]["catsdogs_cnn"]}}}}}))
    changed = tiny_raw(**{"models.catsdogs_cnn.sample": {"epochs": 1}, "models.catsdogs_cnn.epochs": 3})
    with pytest.raises(PipelineError, match=r"set models\.catsdogs_cnn\.sample\.epochs=3 instead"):
        train("catsdogs_cnn", parse_params(changed), prepared)
    assert not prepared.model_file("catsdogs_cnn").exists()
    assert not prepared.train_dir("catsdogs_cnn").exists()

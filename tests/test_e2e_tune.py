"""End to end: `pipeline tune`'s trials as real DVC experiments in a temporary copy of the repository, one study
shared by the tests: every trial listed by `dvc exp show` with its params and metrics, the one whose curve is clearly
worse (an exploding learning rate) pruned at its second epoch and kept as an experiment with `stop_after: 2`, a
`tune` killed mid-study resumed without running a finished trial again, its seed check comparing the runs with the
report's Welch test, and `dvc exp apply` bringing the pruned trial back."""

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

import pipeline.tuning.study as study_module
import pipeline.tuning.trials as trials_module
from pipeline.analysis.seeds import welch_p
from pipeline.core.paths import Paths
from pipeline.tuning.study import RunResult, Study
from tests.helpers.params import tiny_raw
from tests.helpers.workspace import GIT_ENV, attempt, committed_copy, dvc

pytestmark = pytest.mark.slow
MODEL = "catsdogs_cnn"
LRS = (0.001, 50.0)  # the baseline's, and one that explodes: pruned at its second epoch against the first's curve
SEED = tiny_raw()["seed"]


@dataclass
class Tuned:
    """The repository, the study's summary after the trials and after the resumed `tune`, `dvc exp show`'s
    experiments by name (their params and metrics) at the end, and the Welch tests the seed check ran."""

    root: Path
    trials: dict[str, Any]
    resumed: dict[str, Any]
    shown: dict[str, dict[str, Any]]
    welch_calls: list[tuple[list[float], list[float]]]


def tune(root: Path, seeds: int, patch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`pipeline tune MODEL --trials 2 --seeds SEEDS --space space.yaml` in `root`, the median pruner comparing
    from the second trial on (one complete trial is the median), the curve read every 0.1 s."""
    for key, value in GIT_ENV.items():
        patch.setenv(key, value)
    patch.setattr(study_module, "STARTUP_TRIALS", 1)
    patch.setattr(trials_module, "POLL_S", 0.1)
    return trials_module.tune_in_repo(Paths(root), MODEL, 2, root / "space.yaml", seeds, "median")


def stored_study(root: Path) -> Any:
    return Study(MODEL, root / ".dvc" / "tmp" / "tune" / f"{MODEL}.sqlite3", "val_loss").open()


def killed_in_a_third_trial(root: Path) -> None:
    """What a `tune` killed during a third trial leaves in its study: that trial running, and the results of the seed
    runs at the second seed it had done."""
    study = stored_study(root)
    study.ask()
    for name in (f"tune-{MODEL}-0-seed{SEED + 1}", f"tune-{MODEL}-baseline-seed{SEED + 1}"):
        study.set_user_attr(name, asdict(RunResult(objective=0.69, val_acc=0.5, test_acc=0.5)))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    """A committed copy of the repository (no stage run yet: the first trial runs them all), tuned with two trials
    and no seed check; then, as if killed, tuned again with a seed check of two seeds."""
    # lr in the block: trial 0 is the baseline. 40 epochs (tens of milliseconds each): the curve is read between
    # epochs, so a pruned trial must still be training well after its second (on a loaded machine the read is late).
    block = {f"models.{MODEL}.epochs": 40, f"models.{MODEL}.lr": LRS[0]}
    root = committed_copy(tmp_path_factory.mktemp("tune") / "repo", tiny_raw(**block))
    (root / "space.yaml").write_text(f"models.{MODEL}.lr: {{choices: {list(LRS)}}}\n")
    study = stored_study(root)
    for lr in LRS:
        study.enqueue_trial({f"models.{MODEL}.lr": lr})
    calls: list[tuple[list[float], list[float]]] = []
    with pytest.MonkeyPatch.context() as patch:
        trials = tune(root, 0, patch)
        killed_in_a_third_trial(root)
        patch.setattr(study_module, "welch_p", lambda a, b: calls.append((a, b)) or welch_p(a, b))
        resumed = tune(root, 2, patch)
    shown = {
        exp["name"]: exp["data"]
        for baseline in json.loads(dvc(root, "exp", "show", "--json"))
        for group in baseline.get("experiments") or []
        for exp in group["revs"]
    }
    return Tuned(root, trials, resumed, shown, calls)


def test_every_trial_is_an_experiment_and_the_pruned_one_holds_its_two_epochs(tuned):
    assert [(trial["state"], trial["pruned_at"]) for trial in tuned.trials["trials"]] == [
        ("COMPLETE", None), ("PRUNED", 2)
    ]
    pruned = stored_study(tuned.root).trials[1].user_attrs["result"]
    assert pruned["objective"] is None and pruned["val_acc"] is not None and pruned["test_acc"] is not None

    trials = {name: data for name, data in tuned.shown.items() if "seed" not in name}
    params = {name: data["params"]["params.yaml"]["data"]["models"][MODEL] for name, data in trials.items()}
    assert {name: (block["lr"], block.get("stop_after")) for name, block in params.items()} == {
        f"tune-{MODEL}-0": (LRS[0], None), f"tune-{MODEL}-1": (LRS[1], 2)
    }
    for name, data in trials.items():
        assert {f"metrics/{MODEL}/test.json", f"metrics/{MODEL}/train/metrics.json"} <= set(data["metrics"]), name
    assert trials[f"tune-{MODEL}-1"]["metrics"][f"metrics/{MODEL}/train/metrics.json"]["data"]["stopped_at"] == 2


def test_a_killed_tune_resumes_its_study_and_its_seed_check_uses_the_reports_welch_test(tuned):
    """Resumed, the trial the kill cut short is failed, no finished trial runs again, and the seed check runs the
    seed runs left (the best trial and the baseline at the params' own seed; trial 0 is the baseline, so neither
    trains again: DVC takes them from its run-cache), last of all the baseline's, which leaves the params as the
    study found them."""
    assert [trial["state"] for trial in tuned.resumed["trials"]] == ["COMPLETE", "PRUNED", "FAIL"]
    check = tuned.resumed["seed_check"]
    assert check["seeds"] == [SEED, SEED + 1]
    assert tuned.welch_calls == [
        (check["best"]["val_acc"], check["baseline"]["val_acc"]),
        (check["best"]["test_acc"], check["baseline"]["test_acc"]),
    ]
    assert {name for name in tuned.shown if "seed" in name} == {
        f"tune-{MODEL}-0-seed{SEED}", f"tune-{MODEL}-baseline-seed{SEED}"
    }
    assert (tuned.root / "params.yaml").read_text() == stored_study(tuned.root).user_attrs["baseline_params"]


def test_exp_apply_brings_the_pruned_trial_back(tuned):
    root = tuned.root
    applied = attempt(root, sys.executable, "-m", "dvc", "exp", "apply", f"tune-{MODEL}-1")
    params = (root / "params.yaml").read_text()
    assert f"lr: {LRS[1]}" in params and "stop_after: 2" in params
    assert (root / "models" / f"{MODEL}.pt").is_file()
    missing = [line for line in applied.stderr.splitlines() if line.startswith(("models/", "metrics/"))]
    assert all("export" in line or line.endswith((".onnx", ".pt2")) for line in missing)  # the export never ran here
    assert sorted(path.name for path in (root / "reports" / "tune" / MODEL).iterdir()) == [
        "optimisation_history.png", "summary.json"  # parameter importances need two complete trials
    ]

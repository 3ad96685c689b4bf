"""`pipeline tune MODEL`: an Optuna study of a model's params, each trial run as a DVC experiment, pruned on the
validation curve the train stage logs each epoch, resumable, and its winner checked against seed noise.

The study (TPE sampler; median or ASHA pruning) lives in SQLite under `.dvc/tmp/tune/<model>.sqlite3`, so a `tune`
that is interrupted resumes where it stopped: the trials finished (complete or pruned) count towards `--trials`, a
trial cut short by the interruption is marked failed and run again as a new one. A study in a shared database
(`pipeline.tuning.storage`) is worked on by several workers at once: each asks for a trial while the finished and
running ones are fewer than `--trials`, waits while the last ones run elsewhere, and relies on Optuna's heartbeat,
not on opening the study, to fail a trial whose worker died. The objective is the kept epoch's
`train.monitor` figure on the validation split (`best` in the train stage's metrics.json); the test split plays no
part in any choice. Once the trials are done, the best trial and the baseline (the params as they were) are each run
with `--seeds` seeds, and their accuracies compared with the experiments report's Welch test
(`pipeline.analysis.seeds.welch_p`): the winner is called real only when it beats the baseline beyond seed noise.
Figures: Optuna's optimisation history and parameter importances, in `reports/tune/<model>/`.

How a trial runs (`Runner`) is `pipeline.tuning.trials`'s `dvc exp run`; the study logic here knows only that a run
reports its curve epoch by epoch and can be stopped.
"""

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.analysis.seeds import ALPHA, spread, welch_p
from pipeline.core.atomic import write_json
from pipeline.tuning.space import Space
from pipeline.tuning.storage import Sharing, fail_stale, heartbeat, open_storage

PRUNERS = ("median", "asha", "none")
STARTUP_TRIALS = 2  # trials run in full before the median pruner compares curves
WARMUP_EPOCHS = 2  # epochs are 1-based: no trial is pruned before its second epoch
WAIT_S = 2.0  # how often a worker with nothing to ask looks again at the trials other workers are running
MONITORED = {"val_loss": ("val/loss", "minimize"), "val_acc": ("val/acc", "maximize")}
Watch = Callable[[int, float], bool]  # (epoch, monitored value) -> stop the run now (pruned)


@dataclass(frozen=True)
class RunResult:
    """What one run gave: its objective (None when pruned), the epoch it was pruned at, and its final accuracies."""

    objective: float | None
    pruned_at: int | None = None
    val_acc: float | None = None
    test_acc: float | None = None


class Runner(Protocol):
    """Runs one experiment of the model with some params set, reporting each epoch's monitored figure to `watch`
    and stopping the run when it says so."""

    def run(self, name: str, values: dict[str, Any], watch: Watch) -> RunResult:
        """Run the experiment `name` with `values` (dotted params keys) set."""
        ...


@dataclass(frozen=True)
class Study:
    """Where a model's study is stored and what it optimises."""

    model: str
    storage: Path | str | None  # an SQLite file, a database URL, or None: in memory, not kept
    monitor: str
    pruner: str = "median"
    sharing: Sharing | None = None  # None: this is the study's only worker
    name: str | None = None  # None: tune-<model>

    def open(self) -> Any:
        """The Optuna study, created or loaded (a resumed `tune`). The only worker fails the trials an interruption
        left running; shared, that is the heartbeat's job (a running trial may be another worker's). Alone, the
        sampler is seeded (the same study every time); shared, it is not: workers seeded alike would propose the
        same values side by side."""
        import optuna
        from optuna.trial import TrialState

        study = optuna.create_study(
            study_name=self.name or f"tune-{self.model}",
            storage=None if self.storage is None else open_storage(self.storage, self.sharing),
            load_if_exists=True,
            direction=MONITORED[self.monitor][1],
            sampler=optuna.samplers.TPESampler(seed=0 if self.sharing is None else None),
            pruner=_pruner(self.pruner),
        )
        if self.sharing is None:
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                study.tell(trial.number, state=TrialState.FAIL)
        return study


def _pruner(kind: str) -> Any:
    """Optuna's median pruner (a trial below the median of earlier trials at the same epoch stops), ASHA
    (successive halving), or none."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS)
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def run_trials(study: Any, space: Space, trials: int, runner: Runner) -> None:
    """Ask, run and tell until the study holds `trials` finished trials (complete or pruned). Trials other workers
    are running count as on their way: while they would make up the number this worker waits (every WAIT_S) for
    them to finish, or to be failed by the heartbeat and retried here. Workers that ask at the same instant can
    leave the study a trial or so over `trials`."""
    while True:
        fail_stale(study)
        finished, running = _counts(study)
        if finished >= trials:
            return
        if finished + running >= trials:
            time.sleep(WAIT_S)
            continue
        run_trial(study, space, runner)


def _counts(study: Any) -> tuple[int, int]:
    """How many of the study's trials are finished (complete or pruned), and how many running."""
    from optuna.trial import TrialState

    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    finished = sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states)
    return finished, states.count(TrialState.RUNNING)


def run_trial(study: Any, space: Space, runner: Runner) -> None:
    """Ask for one trial (a failed one's retry first), run it as the experiment `STUDY-NUMBER` (by default
    `tune-MODEL-NUMBER`) under the heartbeat and tell its result; a run that raises (an error, Ctrl-C) leaves the
    trial failed."""
    from optuna.trial import TrialState

    trial = study.ask()
    values = {key: dimension.suggest(trial, key) for key, dimension in space.items()}

    def watch(epoch: int, value: float) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    with heartbeat(study, trial):
        try:
            result = runner.run(f"{study.study_name}-{trial.number}", values, watch)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
    trial.set_user_attr("result", asdict(result))
    if result.pruned_at is not None or result.objective is None:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, result.objective)


@dataclass(frozen=True)
class SeedCheck:
    """The best trial and the baseline run with the same seeds: their accuracies, Welch's p on each, and the
    verdict on test accuracy (the report's test)."""

    seeds: list[int]
    best: dict[str, list[float]]
    baseline: dict[str, list[float]]
    p_val: float | None
    p_test: float | None

    @property
    def real(self) -> bool:
        """The best trial's mean test accuracy is above the baseline's with Welch's p below ALPHA."""
        better = spread(self.best["test_acc"]).mean > spread(self.baseline["test_acc"]).mean
        return better and self.p_test is not None and self.p_test < ALPHA


def seed_check(study: Any, runner: Runner, seeds: list[int]) -> SeedCheck:
    """Run the best trial's values and the baseline with each seed (a run already in the study is not run again:
    a resumed `tune` goes on), and compare them. The seeds run last to first, so that the last run of all is the
    baseline with the first seed (the params' own): the workspace ends as the study found it."""
    best = study.best_trial
    runs: dict[str, dict[str, list[float]]] = {side: {"val_acc": [], "test_acc": []} for side in ("best", "baseline")}
    for seed in reversed(seeds):
        for side, values, name in (
            ("best", best.params, f"{study.study_name}-{best.number}-seed{seed}"),
            ("baseline", {}, f"{study.study_name}-baseline-seed{seed}"),
        ):
            result = _remembered(study, name, lambda name=name, values=values, seed=seed: runner.run(
                name, {**values, "seed": seed}, lambda epoch, value: False
            ))
            runs[side]["val_acc"].insert(0, result.val_acc)  # in the order of `seeds`
            runs[side]["test_acc"].insert(0, result.test_acc)
    return SeedCheck(
        seeds,
        runs["best"],
        runs["baseline"],
        welch_p(runs["best"]["val_acc"], runs["baseline"]["val_acc"]),
        welch_p(runs["best"]["test_acc"], runs["baseline"]["test_acc"]),
    )


def _remembered(study: Any, name: str, run: Callable[[], RunResult]) -> RunResult:
    """A seed run's result from the study's records, or run now and recorded there."""
    done = study.user_attrs.get(name)
    if done is not None:
        return RunResult(**done)
    result = run()
    study.set_user_attr(name, asdict(result))
    return result


def write_figures(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimisation history and (with two complete trials or more) parameter importances, as PNG."""
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    from pipeline.analysis.plots import save_png

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "optimisation_history.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the matplotlib plots are "experimental"
        save_png(plot_optimization_history(study).figure, written[0])
        if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
            written.append(folder / "param_importances.png")
            save_png(plot_param_importances(study).figure, written[1])
    return written


def summary(study: Any, check: SeedCheck | None) -> dict[str, Any]:
    """What the study found, as summary.json records it: every trial's state, values and objective, the best
    trial, and the seed check."""
    trials = [
        {"number": t.number, "state": t.state.name, "params": t.params, "objective": t.value,
         "pruned_at": t.user_attrs.get("result", {}).get("pruned_at")}
        for t in study.get_trials(deepcopy=False)
    ]
    best = study.best_trial
    found: dict[str, Any] = {
        "trials": trials, "best": {"number": best.number, "params": best.params, "objective": best.value}
    }
    if check is not None:
        found["seed_check"] = {**asdict(check), "real": check.real, "alpha": ALPHA}
    return found


def tune(
    study: Any, space: Space, trials: int, runner: Runner, seeds: list[int], folder: Path
) -> dict[str, Any]:
    """The whole study: the trials, the seed check of the best against the baseline (with 2 seeds or more), the
    figures and summary.json in `folder`; returns the summary."""
    run_trials(study, space, trials, runner)
    check = seed_check(study, runner, seeds) if len(seeds) >= 2 else None
    write_figures(study, folder)
    found = summary(study, check)
    write_json(folder / "summary.json", found)
    return found

"""How `pipeline tune` runs a trial: `dvc exp run --name NAME -S key=value ... evaluate@MODEL` in the workspace, so
that every trial, pruned or not, is a real DVC experiment (`dvc exp show` lists it with its params and metrics,
`dvc exp apply` brings it back), watched while it trains.

Every run starts from the baseline params (the params file as `tune` first found it, kept with the study), so one
trial's values never leak into the next. While it runs, the monitored validation curve DVCLive writes each epoch is
read and given to the study's pruner. A trial it prunes at epoch k is stopped (its running stage interrupted) with
its checkpoint kept, then run again as the same experiment with `models.<model>.stop_after=k` added: the train stage
resumes from that checkpoint, `train.stop_after` being no part of its fingerprint (at most one epoch is redone, or
all of them where the run had got two epochs past k before it stopped), ends after epoch k, and its kept epoch's
model is written and evaluated. The experiment holds the pruned run's metrics
under params that produce exactly them (a resumed run equals an uninterrupted one), so neither it nor DVC's
run-cache can hand a cut-short run's outputs to params that would not produce them. The baseline params are written
back before every run and when `tune` ends, so `stop_after` never reaches another trial, a seed run or the workspace.
With `push`, each experiment is pushed once run (`dvc exp push origin NAME`: its git ref to the git remote, its
outputs to the default DVC remote), so that a study shared by workers on several machines can be pulled from any.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from pipeline.config.overrides import read_yaml
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.tuning.storage import Where, study_storage
from pipeline.tuning.study import MONITORED, RunResult, Watch

POLL_S = 0.5
LOG_LINES = 30  # of a failed run's output in the error


class DvcExperiments:
    """Runs trials of `model` as DVC experiments in the repository at `paths.root`."""

    def __init__(
        self, paths: Paths, model: str, monitor: str, baseline: str, logs: Path, push: bool = False
    ) -> None:
        self.paths, self.model, self.monitor, self.push = paths, model, monitor, push
        self.baseline, self.params_file, self.logs = baseline, paths.root / "params.yaml", logs
        self.baseline_raw = read_yaml(baseline)
        logs.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, values: dict[str, Any], watch: Watch) -> RunResult:
        """Run the experiment (see the module's docstring); a run that fails is an error with its output's end."""
        pruned_at = self._experiment(name, values, watch, self.logs / f"{name}.log")
        if pruned_at is None:
            result = self._result()
        else:
            stopped = {**values, f"models.{self.model}.stop_after": pruned_at}
            self._experiment(name, stopped, lambda epoch, value: False, self.logs / f"{name}.stop_after.log")
            finished = self._result()
            result = RunResult(None, pruned_at, val_acc=finished.val_acc, test_acc=finished.test_acc)
        if self.push:
            self._push(name)
        return result

    def _push(self, name: str) -> None:
        """`dvc exp push origin NAME`: the experiment's git ref and its cached outputs to the remotes."""
        command = [sys.executable, "-m", "dvc", "exp", "push", "origin", name]
        pushed = subprocess.run(
            command, cwd=self.paths.root, capture_output=True, text=True, env=_this_python_first(), check=False
        )
        if pushed.returncode != 0:
            tail = "\n".join((pushed.stdout + pushed.stderr).splitlines()[-LOG_LINES:])
            raise PipelineError(f"experiment {name} ran but `dvc exp push origin {name}` failed:\n{tail}")

    def _experiment(self, name: str, values: dict[str, Any], watch: Watch, log: Path) -> int | None:
        """`dvc exp run` of the experiment `name` with `values` set, its output in `log`; the epoch `watch` stopped
        it at (`_stop`; its checkpoint left to resume), else None once it has finished (also when it finished
        before the stop reached it: then it is a whole run, saved as the experiment)."""
        self.restore()
        curve = self.paths.train_dir(self.model) / "plots" / "metrics" / f"{MONITORED[self.monitor][0]}.tsv"
        curve.unlink(missing_ok=True)  # a previous run's curve must not be read as this one's
        command = [sys.executable, "-m", "dvc", "exp", "run", "--name", name]
        for key, value in values.items():
            added = "" if _has_key(self.baseline_raw, key) else "+"  # DVC sets a key a block lacks as +key=value
            command += ["-S", f"{added}{key}={json.dumps(value)}"]
        with log.open("w") as output:
            process = subprocess.Popen(
                [*command, f"evaluate@{self.model}"], cwd=self.paths.root, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, env=_this_python_first(),
            )
            try:
                pruned_at = _watch_curve(process, curve, log, f"train@{self.model}", watch)
            finally:
                _stop(process)
        if process.returncode == 0:
            return None
        if pruned_at is None:
            tail = "\n".join(log.read_text().splitlines()[-LOG_LINES:])
            raise PipelineError(f"experiment {name} failed (dvc exp run exited {process.returncode}; {log}):\n{tail}")
        return pruned_at

    def restore(self) -> None:
        """Write the baseline params back."""
        if self.params_file.read_text() != self.baseline:
            self.params_file.write_text(self.baseline)

    def _result(self) -> RunResult:
        """The finished run's objective (the kept epoch's monitored figure) and its validation and test accuracy."""
        best = json.loads((self.paths.train_dir(self.model) / "metrics.json").read_text())["best"]
        test = json.loads(self.paths.test_metrics(self.model).read_text())
        return RunResult(
            objective=float(best[MONITORED[self.monitor][0]]), val_acc=float(best["val/acc"]),
            test_acc=float(test["accuracy"]),
        )


def tune_in_repo(
    paths: Paths, model: str, trials: int, space_file: Path | None, seeds: int, pruner: str, where: Where | None = None
) -> dict[str, Any]:
    """`pipeline tune` in the repository at `paths.root`: the study stored under .dvc/tmp/tune/ (or where `where`
    says, shared with other workers), its trials run as DVC experiments from the baseline params (the study's, as
    the first worker found them), the seed check with `seeds` seeds (none below 2), the figures and summary.json in
    reports/tune/<model>/; returns the summary."""
    from pipeline.config.params import parse_params
    from pipeline.tuning.space import check_space, read_space
    from pipeline.tuning.study import tune

    params = parse_params(read_yaml((paths.root / "params.yaml").read_text()))
    config = params.model(model)
    where = where or Where()
    study, baseline = open_study(paths, model, pruner, where)
    space = read_space(space_file, config)
    check_space(space, read_yaml(baseline), model)
    logs = paths.root / ".dvc" / "tmp" / "tune" / "logs"
    runner = DvcExperiments(paths, model, config.train.monitor, baseline, logs, where.push)
    try:
        checked = [params.seed + n for n in range(seeds)]  # the baseline's seed and the ones after it
        return tune(study, space, trials, runner, checked, paths.root / "reports" / "tune" / model)
    finally:
        runner.restore()


def open_study(paths: Paths, model: str, pruner: str, where: Where) -> tuple[Any, str]:
    """The study of `model` (created, or loaded: resumed, or another worker's) and its baseline params: the text of
    params.yaml as the study's first worker found it, kept with the study."""
    from pipeline.config.params import parse_params
    from pipeline.tuning.study import Study

    params_file = paths.root / "params.yaml"
    monitor = parse_params(read_yaml(params_file.read_text())).model(model).train.monitor
    sharing = where.sharing if where.storage else None
    study = Study(model, study_storage(paths.root, model, where), monitor, pruner, sharing, where.study).open()
    baseline = study.user_attrs.get("baseline_params")
    if baseline is None:
        baseline = params_file.read_text()
        study.set_user_attr("baseline_params", baseline)
    return study, baseline


def _this_python_first() -> dict[str, str]:
    """The environment with this Python's folder first on PATH: the stages' `python` is the one running tune."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _has_key(raw: Any, key: str) -> bool:
    """Whether the dotted `key` is in the params mapping `raw`."""
    for part in key.split("."):
        if not isinstance(raw, dict) or part not in raw:
            return False
        raw = raw[part]
    return True


def _watch_curve(process: subprocess.Popen, curve: Path, log: Path, stage: str, watch: Watch) -> int | None:
    """Give `watch` each epoch's row of the curve once, as the train stage writes it; the epoch it said stop at,
    else None.

    At the start of a run DVC may put the previous experiment's curve back in the workspace: rows count only once
    the log says the train stage is running and the file was written after that. A train stage that DVC skips
    (unchanged) leaves its curve as it was, the right one: given to `watch` once the run is done, which can then
    no longer stop it."""
    last, started = 0, None
    while True:
        finished = process.poll() is not None
        if started is None and f"Running stage '{stage}'" in log.read_text():
            started = time.time()
        fresh = started is not None and curve.is_file() and curve.stat().st_mtime >= started
        if fresh or finished:
            for epoch, value in _rows(curve):
                if epoch > last:
                    last = epoch
                    if watch(epoch, value) and not finished:
                        return epoch
        if finished:
            return None
        time.sleep(POLL_S)


def _rows(curve: Path) -> list[tuple[int, float]]:
    """The (step, value) rows of a DVCLive TSV written so far (a half-written last line left for later)."""
    if not curve.is_file():
        return []
    lines = curve.read_text().split("\n")
    complete = lines[1:-1] if len(lines) > 1 else []
    return [(int(step), float(value)) for step, value, *_ in (line.split("\t") for line in complete if line)]


def _stop(process: subprocess.Popen) -> None:
    """End a `dvc exp run` (a no-op once it has ended) by interrupting its stages: SIGINT to the stage command running
    now, and to any stage DVC starts after it, until DVC gives up. DVC itself is not signalled: it sees a stage fail
    and puts the workspace back as after any failed run (a killed `dvc exp run` leaves its changes staged in git's
    index, and the next one fails). A stage interrupted while exiting ends as it would have, and the next one is
    interrupted instead."""
    interrupted: set[int] = set()
    while process.poll() is None:
        for stage in _stage_processes(process.pid):
            if stage.pid not in interrupted:
                interrupted.add(stage.pid)
                with contextlib.suppress(psutil.Error):
                    stage.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=POLL_S)


def _stage_processes(pid: int) -> list[psutil.Process]:
    """The processes under `pid` that run a stage's command (DVC sets DVC_STAGE in their environment)."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    stages = []
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            if "DVC_STAGE" in child.environ():
                stages.append(child)
    return stages

"""End to end against a real S3-compatible server (moto's, on 127.0.0.1, started and stopped here): the outputs of a
tiny `dvc repro` pushed, pulled into a fresh clone and found byte-identical; a push that loses its connection
mid-way fails, leaves nothing a pull takes as complete, and a second push completes; an experiment shared with
`dvc exp push` and fetched with `dvc exp pull`, applied elsewhere without training again."""

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from tests.helpers.workspace import (
    attempt,
    committed_repro,
    dvc,
    run,
    stages_run,
    wait_for_queue,
)
from tests.helpers.params import TINY, TINY_IRIS
from tests.helpers.s3 import BUCKET, Proxy, content_matches_name, moto_s3

pytestmark = pytest.mark.slow

IRIS_ONLY = {"seed": 7, **copy.deepcopy(TINY_IRIS), **{block: TINY[block] for block in ("aug", "train", "evaluate", "audit")}}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """moto's S3 server, for the tests of this module."""
    with moto_s3(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, s3) -> tuple[Path, set[str]]:
    """A committed tiny repo (the Iris dataset and MLP) after `dvc repro`, its default remote the server, as the docs
    set one up; with the names of the objects in its cache, which a push must deliver."""
    root = committed_repro(tmp_path_factory.mktemp("project"), IRIS_ONLY)
    dvc(root, "remote", "add", "-d", "storage", f"s3://{BUCKET}/store")
    dvc(root, "remote", "modify", "storage", "endpointurl", s3.endpoint)
    run(root, "git", "commit", "-qam", "the team's remote")
    cache = root / ".dvc" / "cache" / "files" / "md5"
    return root, {str(path.relative_to(cache)) for path in cache.rglob("*") if path.is_file()}


def pipeline(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline ARGS` in `cwd`, whatever its exit status."""
    return attempt(cwd, sys.executable, "-m", "pipeline", *args, env=env, timeout=300)


def outputs(root: Path) -> dict[str, bytes]:
    """Every file of every stage output (data, models, metrics, plots), by path in the repo."""
    with Repo(str(root)) as repo:
        outs = [Path(out.fs_path) for stage in repo.index.stages for out in stage.outs]
    files = [file for out in outs for file in ([out] if out.is_file() else sorted(out.rglob("*")))]
    return {str(file.relative_to(root)): file.read_bytes() for file in files if file.is_file()}


def fresh_clone(source: Path, target: Path) -> Path:
    """`git clone` of `source`: the code, params and dvc.lock, an empty DVC cache and no outputs."""
    run(target.parent, "git", "clone", "-q", str(source), target.name)
    assert not (target / ".dvc" / "cache").exists() and not (target / "models" / "iris_mlp.pt").exists()
    return target


def add_local_remote(root: Path, name: str, url: str, endpoint: str) -> None:
    """What `dvc remote add --local NAME URL` and `dvc remote modify --local NAME endpointurl ENDPOINT` write."""
    with (root / ".dvc" / "config.local").open("a") as config:
        config.write(f"['remote \"{name}\"']\n    url = {url}\n    endpointurl = {endpoint}\n")


def assert_nothing_to_do(root: Path, env: dict[str, str]) -> None:
    assert "Data and pipelines are up to date" in dvc(root, "status", env=env)
    assert stages_run(dvc(root, "repro", env=env)) == set()


def test_pushed_outputs_come_back_byte_identical_in_a_fresh_clone(project, s3, tmp_path):
    root, _ = project
    pushed = pipeline(root, "push", env=s3.env())
    assert pushed.returncode == 0, pushed.stderr
    clone = fresh_clone(root, tmp_path / "clone")

    pulled = pipeline(clone, "pull", env=s3.env())

    assert pulled.returncode == 0, pulled.stderr
    expected = outputs(root)
    assert "models/iris_mlp.pt" in expected and "data/processed/iris/meta.json" in expected
    assert outputs(clone) == expected
    assert_nothing_to_do(clone, s3.env())


def test_a_push_cut_off_midway_fails_and_a_second_push_completes(project, s3, tmp_path):
    root, cached = project
    proxy = Proxy(("127.0.0.1", int(s3.endpoint.rsplit(":", 1)[1])))
    add_local_remote(root, "flaky", f"s3://{BUCKET}/flaky", f"http://127.0.0.1:{proxy.port}")
    total = sum((root / ".dvc/cache/files/md5" / name).stat().st_size for name in cached)
    proxy.start(cut_after=total // 2)
    try:
        failed = pipeline(root, "push", "--remote", "flaky", "--jobs", "2", env=s3.env())
        assert proxy.cut.is_set()
        assert failed.returncode != 0 and "ERROR" in failed.stderr and "hint: " in failed.stderr, failed.stderr
        half = s3.objects("flaky/")
        assert len(half) < len(cached)
        assert all(content_matches_name(key, body) for key, body in half.items())  # no truncated object

        early = fresh_clone(root, tmp_path / "early")  # straight to the server: all there is, is what arrived
        add_local_remote(early, "flaky", f"s3://{BUCKET}/flaky", s3.endpoint)
        incomplete = pipeline(early, "pull", "--remote", "flaky", env=s3.env())
        assert incomplete.returncode != 0, incomplete.stdout  # a pull does not take a half-pushed remote as complete
        assert "hint: the remote lacks some files" in incomplete.stderr, incomplete.stderr

        proxy.start()  # the link is back
        second = pipeline(root, "push", "--remote", "flaky", env=s3.env())
        assert second.returncode == 0, second.stderr
    finally:
        proxy.stop()
    stored = s3.objects("flaky/")
    assert {key.removeprefix("flaky/files/md5/") for key in stored} == cached
    assert all(content_matches_name(key, body) for key, body in stored.items())
    later = fresh_clone(root, tmp_path / "later")
    add_local_remote(later, "flaky", f"s3://{BUCKET}/flaky", s3.endpoint)
    pulled = pipeline(later, "pull", "--remote", "flaky", env=s3.env())
    assert pulled.returncode == 0, pulled.stderr
    assert outputs(later) == outputs(root)


def _experiments(root: Path, env: dict[str, str]) -> dict[str, dict]:
    shown = json.loads(dvc(root, "exp", "show", "--json", env=env))
    return {exp["name"]: exp for base in shown for group in base.get("experiments") or [] for exp in group["revs"]}


def _model_md5_in_lock(root: Path, rev: str) -> str:
    lock = yaml.safe_load(run(root, "git", "show", f"{rev}:dvc.lock"))
    (md5,) = [out["md5"] for out in lock["stages"]["train@iris_mlp"]["outs"] if out["path"] == "models/iris_mlp.pt"]
    return md5


def test_an_experiment_travels_by_exp_push_and_exp_pull_and_applies_without_training(project, s3, tmp_path):
    root, _ = project
    env = s3.env()
    origin = tmp_path / "origin.git"
    run(tmp_path, "git", "clone", "-q", "--bare", str(root), origin.name)
    run(root, "git", "remote", "add", "origin", str(origin))
    dvc(root, "exp", "run", "--queue", "--name", "longer", "-S", "models.iris_mlp.epochs=5", env=env)
    dvc(root, "queue", "start", "-j", "1", env=env)
    assert "Success" in wait_for_queue(root, env)
    assert stages_run(dvc(root, "queue", "logs", "longer", env=env)) == {
        "model_settings@iris_mlp", "train@iris_mlp", "evaluate@iris_mlp", "export@iris_mlp"
    }
    mine = _experiments(root, env)["longer"]
    dvc(root, "exp", "push", "origin", "longer", env=env)  # the git ref to origin, the outputs to the S3 remote

    other = tmp_path / "other"
    run(tmp_path, "git", "clone", "-q", str(origin), other.name)
    dvc(other, "exp", "pull", "origin", "longer", env=env)
    theirs = _experiments(other, env)["longer"]
    assert theirs["data"]["metrics"] == mine["data"]["metrics"]
    assert "accuracy" in theirs["data"]["metrics"]["metrics/iris_mlp/test.json"]["data"]

    dvc(other, "exp", "apply", "longer", env=env)
    dvc(other, "pull", env=env)
    model = hashlib.md5((other / "models/iris_mlp.pt").read_bytes()).hexdigest()
    assert model == _model_md5_in_lock(root, mine["rev"]) != _model_md5_in_lock(root, "HEAD")
    assert_nothing_to_do(other, env)  # the experiment's model, not trained again

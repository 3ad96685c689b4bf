"""`pipeline push` / `pipeline pull` against a real S3-compatible server (moto's, on 127.0.0.1, started and stopped
here) that checks credentials: a wrong key, no credentials and an endpoint where nothing listens each give DVC's
error, then one line naming what to set, and a non-zero exit; credentials kept in `.dvc/config.local` work and stay
out of git."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.remote import hint
from pipeline.serving.launch import free_port
from tests.helpers.s3 import BUCKET, moto_s3
from tests.helpers.workspace import attempt, dvc, run

DATA = bytes(range(256)) * 256  # 64 KiB


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """moto's S3 server, for the tests of this module."""
    with moto_s3(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, s3) -> Path:
    """A git + DVC repository with one tracked file, its default remote the server, pushed there."""
    root = tmp_path_factory.mktemp("team")
    for command in (["init", "-q"], ["config", "user.name", "e2e"], ["config", "user.email", "e2e@example.com"]):
        run(root, "git", *command)
    dvc(root, "init", "-q")
    (root / "data.bin").write_bytes(DATA)
    dvc(root, "add", "-q", "data.bin")
    dvc(root, "remote", "add", "-d", "storage", f"s3://{BUCKET}/errors")
    dvc(root, "remote", "modify", "storage", "endpointurl", s3.endpoint)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "data and remote")
    dvc(root, "push", "-q", env=s3.env())
    return root


def _pipeline(cwd: Path, direction: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return attempt(cwd, sys.executable, "-m", "pipeline", direction, env=env, timeout=120)


def _workspace(pushed: Path, direction: str, target: Path) -> Path:
    """Where to try: for a push, a copy of the repository with its cache; for a pull, a fresh clone (no cache)."""
    if direction == "push":
        shutil.copytree(pushed, target)
    else:
        run(target.parent, "git", "clone", "-q", str(pushed), target.name)
    return target


CASES = {
    "wrong key": ({"key_id": "AKIAWRONGWRONGWRONG00", "secret": "wrong"}, "Forbidden", "refused the credentials"),
    "no credentials": ({"key_id": None, "secret": None}, "Unable to locate credentials", "no credentials"),
    "nothing listening": ({}, "Could not connect to the endpoint URL", "nothing answers at http://127.0.0.1:"),
}


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["push", "pull"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_remote_problem_is_dvcs_error_then_one_hint_naming_what_to_set(pushed, s3, tmp_path, direction, case):
    credentials, dvc_says, we_say = CASES[case]
    root = _workspace(pushed, direction, tmp_path / "work")
    if case == "nothing listening":
        dvc(root, "remote", "modify", "--local", "storage", "endpointurl", f"http://127.0.0.1:{free_port()}")

    result = _pipeline(root, direction, s3.env(**credentials))

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert any(dvc_says in line for line in errors), result.stderr
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1 and we_say in hints[0], result.stderr
    fix = "endpointurl" if case == "nothing listening" else "dvc remote modify --local storage access_key_id"
    assert fix in hints[0]
    if direction == "pull":
        assert not (root / "data.bin").exists()


@pytest.mark.slow
def test_credentials_in_config_local_work_and_stay_out_of_git(pushed, s3, tmp_path):
    root = _workspace(pushed, "pull", tmp_path / "clone")
    dvc(root, "remote", "modify", "--local", "storage", "access_key_id", s3.key_id)
    dvc(root, "remote", "modify", "--local", "storage", "secret_access_key", s3.secret)

    result = _pipeline(root, "pull", s3.env(key_id=None, secret=None))

    assert result.returncode == 0, result.stderr
    assert (root / "data.bin").read_bytes() == DATA
    assert s3.secret in (root / ".dvc" / "config.local").read_text()
    run(root, "git", "check-ignore", "-q", ".dvc/config.local")  # exit status 0: ignored
    assert run(root, "git", "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("ERROR: unexpected error - Unable to locate credentials", "export AWS_ACCESS_KEY_ID"),
        ("An error occurred (InvalidAccessKeyId) when calling the PutObject operation", "refused the credentials"),
        ("An error occurred (SignatureDoesNotMatch) when calling the HeadObject operation", "refused the credentials"),
        ('Could not connect to the endpoint URL: "http://10.0.0.9:9000/b"', "nothing answers at http://minio:9000"),
        ("An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation", "s3://lab/dvc does not exist"),
        ("config file error: no remote specified in /repo/.dvc/config", "dvc remote add -d NAME"),
        ("config file error: remote 'nope' doesn't exist", "dvc remote list"),
        ("you are not inside of a DVC repository (checked up to mount point '/')", "run it inside the project"),
        ("something new", "docs/how-to/team-remotes.md"),
    ],
)
def test_the_hint_names_what_to_set_for_each_kind_of_failure(error, expected):
    said = hint(error, {"name": "lab", "url": "s3://lab/dvc", "endpointurl": "http://minio:9000"})
    assert expected in said
    assert "\n" not in said

"""A real PostgreSQL server for the tests of shared studies: `initdb` in a temporary folder, `pg_ctl start` on
127.0.0.1 at a free port (its unix socket in that folder too), trust authentication, fsync off; stopped and removed
afterwards. PostgreSQL refuses to run as root, so as root (CI, containers) the server runs as an unprivileged user
(`postgres` where it exists, else `nobody`) through `runuser`. Where the binaries or such a user are missing, the
tests that need the server are skipped with the reason."""

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARIES = ("initdb", "pg_ctl", "postgres")
USERS = ("postgres", "nobody")  # tried in this order when the tests run as root
SUPERUSER = "tune"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields the URL of its `postgres` database."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip(f"PostgreSQL's {', '.join(missing)} not on PATH (apt install postgresql): no server to test with")
    prefix = _unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    try:
        _hand_over(folder, prefix)
        port = free_port()
        data = folder / "data"
        _run(prefix, "initdb", "-D", str(data), "-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {port} -k {folder} -F"
        _run(prefix, "pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
        try:
            yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        finally:
            _run(prefix, "pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a user it accepts: none unless this is root."""
    if os.geteuid() != 0:
        return []
    users = [name for name in USERS if _user_exists(name)]
    if not users or shutil.which("runuser") is None:
        pytest.skip("running as root without runuser or an unprivileged user (postgres, nobody): PostgreSQL "
                    "refuses to run as root")
    return ["runuser", "-u", users[0], "--"]


def _user_exists(name: str) -> bool:
    """Whether the system has the user `name`."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _hand_over(folder: Path, prefix: list[str]) -> None:
    """Make `folder` the server user's (when it runs as another user)."""
    if prefix:
        user = pwd.getpwnam(prefix[2])
        os.chown(folder, user.pw_uid, user.pw_gid)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(prefix: list[str], *command: str) -> None:
    """Run a PostgreSQL binary; a failure fails the test with its output."""
    done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command[:2])} failed:\n{done.stdout}\n{done.stderr}"

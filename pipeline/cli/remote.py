"""`pipeline push` and `pipeline pull`: DVC's own push and pull of the cache to a remote (S3, MinIO, SSH, a folder),
with DVC's output as it is and, when DVC fails, one line that says what to set.

Only the CLI's push and pull commands import this module, inside the command: no stage depends on it.
"""

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GUIDE = "docs/how-to/team-remotes.md"


def transfer(direction: str, remote: str | None = None, jobs: int | None = None) -> tuple[int, str | None]:
    """Run `dvc push` or `dvc pull` (`direction`) in this folder as the `dvc` command does, its output and progress
    as DVC writes them; returns DVC's exit status and, when it failed, one line that says how to fix the cause."""
    from dvc.cli import main

    arguments = [direction, *(["--remote", remote] if remote else []), *(["--jobs", str(jobs)] if jobs else [])]
    with _recorded(("dvc", "dvc_objects", "dvc_data")) as errors:
        status = main(arguments)
    if status == 0:
        return 0, None
    return status, hint("\n".join(errors), _remote_settings(Path.cwd(), remote))


@contextlib.contextmanager
def _recorded(names: tuple[str, ...]) -> Iterator[list[str]]:
    """The text of every warning and error the loggers `names` emit meanwhile, each with its exception's chain."""
    found: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno < logging.WARNING:
                return
            found.append(record.getMessage())
            error = record.exc_info[1] if record.exc_info else None
            for _ in range(10):  # a chain of causes is short; the bound guards against a cycle
                if error is None:
                    break
                found.append(f"{type(error).__name__}: {error}")
                error = error.__cause__ or error.__context__

    recorder = Recorder()
    for name in names:
        logging.getLogger(name).addHandler(recorder)
    try:
        yield found
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(recorder)


def hint(error: str, settings: dict[str, str]) -> str:
    """The one line that says what to set, from DVC's error text and the remote's settings (`name`, `url`,
    `endpointurl`, as far as known)."""
    name = settings.get("name") or "NAME"
    for markers, advice in _HINTS:
        if any(marker.lower() in error.lower() for marker in markers):
            return advice(name, settings)
    return f"see {GUIDE}: `dvc remote list` shows the remotes; set credentials and the endpoint as it says"


def _no_credentials(name: str, settings: dict[str, str]) -> str:
    return (
        "no credentials for the remote: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or keep them out of git "
        f"with `dvc remote modify --local {name} access_key_id ID` and `... --local {name} secret_access_key SECRET`"
    )


def _refused(name: str, settings: dict[str, str]) -> str:
    return (
        f"the remote refused the credentials: check the key pair in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or in "
        f"`dvc remote modify --local {name} access_key_id ID` and `secret_access_key` (which win over the "
        "environment), and that the key may read and write the bucket"
    )


def _unreachable(name: str, settings: dict[str, str]) -> str:
    where = settings.get("endpointurl") or settings.get("url") or "the remote"
    return (
        f"nothing answers at {where}: start the storage server or fix its address with `dvc remote modify {name} "
        "endpointurl http://HOST:PORT` (`--local` for this machine only)"
    )


def _no_bucket(name: str, settings: dict[str, str]) -> str:
    url = settings.get("url") or "s3://BUCKET/PATH"
    return (
        f"the bucket of {url} does not exist: create it, or point the remote at one with `dvc remote modify {name} "
        "url s3://BUCKET/PATH`"
    )


def _no_remote(name: str, settings: dict[str, str]) -> str:
    return (
        "no such DVC remote: `dvc remote list` shows those set; add one with `dvc remote add -d NAME "
        f"s3://BUCKET/PATH` ({GUIDE})"
    )


def _missing_on_remote(name: str, settings: dict[str, str]) -> str:
    return "the remote lacks some files: run `pipeline push` where they were made (or `dvc repro` here to remake them)"


def _not_a_repo(name: str, settings: dict[str, str]) -> str:
    return "run it inside the project: a git clone of the repository, where `.dvc/` is"


_HINTS: list[tuple[tuple[str, ...], Callable[[str, dict[str, str]], str]]] = [
    (("Unable to locate credentials", "NoCredentialsError", "Partial credentials found"), _no_credentials),
    (
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "(403)", "Forbidden"),
        _refused,
    ),
    (("NoSuchBucket", "bucket does not exist"), _no_bucket),
    (
        ("Could not connect to the endpoint URL", "Connection refused", "Cannot connect to host",
         "Name or service not known", "ConnectTimeout", "Connect timeout", "EndpointConnectionError"),
        _unreachable,
    ),
    (("no remote specified", "config file error: remote"), _no_remote),
    (("not inside of a DVC repository", "you are not inside"), _not_a_repo),
    (("Missing cache files", "do not exist neither locally nor on remote"), _missing_on_remote),
]


def _remote_settings(root: Path, remote: str | None) -> dict[str, str]:
    """The remote's name, url and endpoint as DVC's merged config (`.dvc/config` and `config.local`) has them;
    what cannot be read is left out."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            config: dict[str, Any] = repo.config
        name = remote or config["core"].get("remote")
        section = config["remote"].get(name, {}) if name else {}
    except Exception:  # noqa: BLE001 (the hint is a courtesy: DVC's own error is already printed)
        return {"name": remote} if remote else {}
    return {"name": name, **{key: str(section[key]) for key in ("url", "endpointurl") if key in section}}

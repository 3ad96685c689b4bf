"""Where a study lives: an SQLite file in the workspace (the default, one worker) or any database Optuna's
RDBStorage speaks (PostgreSQL for a team: several workers, on one machine or many, drawing trials from one study).

A shared study is kept consistent by Optuna's heartbeat: each worker records one every `heartbeat_s` seconds while
its trial runs, and a running trial whose heartbeat is older than `grace_s` (a worker killed with SIGKILL, a lost
machine) is marked failed by whichever worker looks next. The failed trial is then run again as a new trial with the
same values (`RetryHeartbeatStaleTrialCallback`, up to `retries` times) or skipped (`retries=0`); either way it is never
counted as finished. A database the URL cannot reach, or whose driver is not installed, is one `PipelineError`
naming the URL with its password masked.
"""

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

CREATE_TRIES = 5  # opening a new database, while other workers may be creating its tables too
SQLITE_TIMEOUT_S = 60  # how long an SQLite writer waits for another worker's lock before "database is locked"
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}  # psycopg 3 is the one installed


@dataclass(frozen=True)
class Sharing:
    """How workers share a study: the heartbeat period, how long a silent trial may stay running before it is
    failed (None: Optuna's default, twice the heartbeat), and how many times a failed trial is retried."""

    heartbeat_s: int = 30
    grace_s: int | None = None
    retries: int = 1


@dataclass(frozen=True)
class Where:
    """Which study a worker works on: its storage URL (None: the workspace's own SQLite file, one worker), its name
    (None: tune-<model>), how workers share it, and whether each trial's experiment is pushed to the remotes."""

    storage: str | None = None
    study: str | None = None
    sharing: Sharing = Sharing()
    push: bool = False


def study_storage(root: Path, model: str, where: Where) -> str | Path:
    """Where the study of `model` lives: `where`'s URL, else the workspace's own SQLite file."""
    return where.storage or root / ".dvc" / "tmp" / "tune" / f"{model}.sqlite3"


def url_of(storage: str | Path) -> str:
    """The SQLAlchemy URL of `storage`: a path is an SQLite file; `postgresql://` means psycopg 3's dialect."""
    if isinstance(storage, Path):
        return f"sqlite:///{storage}"
    scheme, sep, rest = storage.partition("://")
    return f"{DRIVERS.get(scheme, scheme)}{sep}{rest}"


def masked(url: str) -> str:
    """`url` with its password (if any) as ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(storage: str | Path, sharing: Sharing | None) -> Any:
    """Optuna's RDBStorage of `storage` (see `url_of`), with the heartbeat and the failed-trial callback of
    `sharing` (None: neither, one worker); a database that cannot be opened is a PipelineError saying what to do."""
    import optuna

    url = url_of(storage)
    if isinstance(storage, Path):
        storage.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if sharing is not None:
        kwargs |= {
            "heartbeat_interval": sharing.heartbeat_s, "grace_period": sharing.grace_s,
            "heartbeat_stale_trial_callback": _on_failed(sharing.retries),
        }
    with _quietly(), _explained(url):
        return _created(lambda: optuna.storages.RDBStorage(url, **kwargs))


def _created(make: Callable[[], Any], tries: int = CREATE_TRIES) -> Any:
    """`make()`, tried again while another worker is creating the same tables: two workers opening a new database
    at once both create Optuna's schema, and the later one's CREATE fails on PostgreSQL's unique catalog entry."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, tries):
        try:
            return make()
        except (IntegrityError, ProgrammingError):
            time.sleep(0.5 * attempt)
    return make()


def _on_failed(retries: int) -> Any:
    """Optuna's callback that enqueues a failed trial's values again (at most `retries` times), or None (skip)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if retries <= 0:
        return None
    with _quietly():
        return RetryHeartbeatStaleTrialCallback(max_retry=retries)


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Optuna's heartbeat is marked experimental; its warning says nothing a user can act on."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@contextlib.contextmanager
def _explained(url: str) -> Iterator[None]:
    """A missing driver or an unreachable database as one PipelineError naming the masked URL and the fix."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (ImportError, ModuleNotFoundError) as exc:
        raise PipelineError(
            f"--storage {masked(url)}: its database driver is not installed ({_first_line(exc.__cause__ or exc)}); "
            "install it (PostgreSQL's, psycopg, comes with the project; `uv add PyMySQL` for MySQL) or give another URL"
        ) from None
    except SQLAlchemyError as exc:
        raise PipelineError(
            f"--storage {masked(url)}: cannot open the database ({_first_line(getattr(exc, 'orig', None) or exc)}); "
            "check that the server is running and that the host, port, database, user and password are right"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def heartbeat(study: Any, trial: Any) -> Iterator[None]:
    """Optuna's heartbeat of `trial` while the block runs (nothing where the storage has none), as `optimize`
    keeps it; `ask`/`tell` alone do not."""
    from optuna.storages._heartbeat import get_heartbeat_thread  # the thread `Study.optimize` itself uses

    with get_heartbeat_thread(trial._trial_id, study._storage):
        yield


def fail_stale(study: Any) -> None:
    """Mark failed the running trials whose worker has stopped beating (and retry them as configured)."""
    import optuna

    with _quietly():
        optuna.storages.fail_stale_trials(study)

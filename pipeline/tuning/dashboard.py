"""`pipeline tune --dashboard`: optuna-dashboard serving a study's storage on 127.0.0.1, to watch the trials of
every worker as they come in (the history, the intermediate curves the pruner compared, parameter importances)."""

from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.tuning.storage import Where, masked, open_storage, study_storage, url_of

HOST = "127.0.0.1"  # this machine only: the dashboard can edit the study (notes, trial states)


def serve_dashboard(paths: Paths, model: str, where: Where, port: int) -> None:
    """Serve optuna-dashboard for the study of `model` (`where`'s storage) until interrupted."""
    from optuna_dashboard import run_server

    storage = study_storage(paths.root, model, where)
    if isinstance(storage, Path) and not storage.is_file():
        raise PipelineError(f"no study of {model} yet ({storage}): run `pipeline tune {model}` first or give --storage")
    opened = open_storage(storage, None)
    print(f"optuna-dashboard of {masked(url_of(storage))} on http://{HOST}:{port}/ (Ctrl-C stops it)", flush=True)
    run_server(opened, host=HOST, port=port)

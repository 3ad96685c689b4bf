"""Kaggle competition files through the official `kagglehub` client, with errors that say what to do."""

from pathlib import Path

from pipeline.core.errors import PipelineError

CREDENTIALS_HELP = (
    "create an API token at https://www.kaggle.com/settings (API > Create New Token) and save it as "
    "~/.kaggle/kaggle.json, or set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN)"
)


def fetch_competition(competition: str) -> Path:
    """Download (or reuse kagglehub's cached copy of) a competition's files; returns their folder."""
    import kagglehub
    import requests
    from kagglehub.config import get_kaggle_credentials
    from kagglehub.exceptions import KaggleApiHTTPError, UnauthenticatedError

    rules = f"https://www.kaggle.com/competitions/{competition}/rules"
    try:
        if get_kaggle_credentials() is None:
            raise UnauthenticatedError()
        return Path(kagglehub.competition_download(competition))
    except (UnauthenticatedError, ValueError) as exc:
        raise PipelineError(f"Kaggle credentials missing or unreadable ({exc}): {CREDENTIALS_HELP}") from None
    except KaggleApiHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise PipelineError(f"Kaggle rejected the credentials (401): {CREDENTIALS_HELP}") from None
        if status == 403:
            raise PipelineError(
                f"Kaggle refused the download (403): sign in and accept the competition rules at {rules}, then re-run"
            ) from None
        raise PipelineError(f"Kaggle download of {competition!r} failed: {exc}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise PipelineError(
            f"cannot reach Kaggle ({exc.__class__.__name__}): check the network, or download {competition}.zip "
            "by hand and use source: local with its path"
        ) from None

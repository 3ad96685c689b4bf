"""The official CIFAR-10 archive: its address and md5 as torchvision names them, fetched with torchvision's
download utilities into a cache shared between runs, and checked against the md5 before it is used."""

import contextlib
import os
import shutil
import tempfile
from http.client import HTTPException
from pathlib import Path

from pipeline.core.errors import PipelineError

# The official archive, as torchvision's `CIFAR10` names it (a test keeps these equal to torchvision's). Copied so
# that importing this module does not import torchvision, which takes seconds.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILENAME = "cifar-10-python.tar.gz"
TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_ENV = "PIPELINE_CACHE_DIR"
DEFAULT_CACHE = "~/.cache/image-pipeline/cifar10"
DOWNLOAD_ATTEMPTS = 2  # a download whose md5 differs is fetched once more before giving up
BY_HAND = f"download {FILENAME} by hand and set data.cifar10.source: local with data.cifar10.path pointing at it"


def cache_dir() -> Path:
    """Where the official archive is kept between runs: $PIPELINE_CACHE_DIR, else ~/.cache/image-pipeline/cifar10."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def fetch_official(cache: Path) -> Path:
    """The official archive in `cache`, downloaded there with torchvision unless a copy with the right md5 is there.

    The download goes to a private folder and is moved into place only once its md5 matches, so parallel runs
    (queued experiments) sharing the cache never see or leave a partial archive. A download whose md5 differs is
    discarded and fetched once more (a transfer can be corrupted); a second mismatch is an error.
    """
    from torchvision.datasets.utils import check_integrity, download_url

    key, archive = "data.cifar10.source", cache / FILENAME
    if check_integrity(str(archive), TGZ_MD5):
        return archive
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download.", dir=cache))
    except OSError as exc:
        raise PipelineError(f"{key}: cannot create the cache folder {cache} ({exc}); set {CACHE_ENV}") from None
    try:
        for _ in range(DOWNLOAD_ATTEMPTS):
            with contextlib.suppress(RuntimeError):  # torchvision's "File not found or corrupted.": the md5 differs
                download_url(URL, str(staging), FILENAME, TGZ_MD5)
                break
        else:
            raise PipelineError(
                f"{key}: the file downloaded from {URL} does not match the official md5 {TGZ_MD5} in "
                f"{DOWNLOAD_ATTEMPTS} attempts; the downloads were discarded. Check for a proxy that alters "
                f"downloads, or {BY_HAND}"
            )
        os.replace(staging / FILENAME, archive)
    except (OSError, HTTPException, RecursionError) as exc:
        raise PipelineError(
            f"{key}: could not download {URL} ({exc.__class__.__name__}: {exc}); check the network, or {BY_HAND}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return archive

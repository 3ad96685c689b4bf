"""`source: hf`: a Hugging Face Hub dataset, by its id (`uoft-cs/cifar10`) or as a local folder of its parquet
shards, opened as a `HubTree` (`pipeline.data.sources.hub_parquet`).

A Hub id is fetched with `huggingface_hub.snapshot_download` (its parquet shards only) into the Hub's cache, where a
second run finds it, offline too (`HF_HUB_OFFLINE=1`); the snapshot's folder is named by the commit it holds, which
the tree carries as its revision. A local folder's revision is a hash of its shards. The Hub's refusals become
errors that say what to do: not in the cache while offline, gated or private (`HF_TOKEN`), an unknown revision.
"""

import re
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.data.sources.hub_parquet import HubTree, shards_hash

HUB_PREFIX = "hf:"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
SHARD_PATTERNS = ["*.parquet", "**/*.parquet"]


def open_hub(path: str, key: str, *, revision: str | None = None, image_column: str | None = None,
             label_column: str | None = None) -> HubTree:
    """The tree of the Hub dataset `path` names: a local folder of parquet shards, or a Hub id (`hf:` optional)
    fetched at `revision` into the Hub's cache."""
    columns = {"image_column": image_column, "label_column": label_column}
    local = Path(path).expanduser()
    if local.is_dir() and not path.startswith(HUB_PREFIX):
        if revision is not None:
            raise PipelineError(
                f"{key}.revision: {path} is a local folder, read as it is; remove revision, or set path to a Hub "
                "dataset id"
            )
        return HubTree(local, key, revision=shards_hash(local), shown=str(local), **columns)
    repo = path.removeprefix(HUB_PREFIX)
    if not HUB_ID.match(repo):
        raise PipelineError(
            f"{key}.path: {path!r} is neither a folder nor a Hub dataset id (OWNER/NAME, such as uoft-cs/cifar10)"
        )
    snapshot = fetch_snapshot(repo, revision, f"{key}.path")
    return HubTree(snapshot, key, revision=snapshot.name, shown=f"the Hub dataset {repo}", **columns)


def fetch_snapshot(repo: str, revision: str | None, key: str) -> Path:
    """The folder of the Hub dataset `repo`'s parquet shards at `revision` (None: its main branch), in the Hub's
    cache, downloaded there unless a copy is there; its name is the commit it holds."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/datasets/{repo}"
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=revision, allow_patterns=SHARD_PATTERNS))
    except GatedRepoError:
        raise PipelineError(
            f"{key}: {repo} is gated: accept its conditions at {page}, then set HF_TOKEN to a token of that account "
            "(or run `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise PipelineError(
            f"{key}: {repo} is not a dataset on the Hub, or it is private: check the id at {page}; for a private "
            "one set HF_TOKEN to a token that may read it (or run `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise PipelineError(
            f"{key}: {repo} has no revision {revision!r}; set revision to a branch, tag or commit listed at "
            f"{page}/commits/main"
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError):
        raise PipelineError(
            f"{key}: {repo} (revision {revision or 'main'}) is not in the Hub's cache ({constants.HF_HUB_CACHE}) "
            "and the Hub cannot be reached (offline, HF_HUB_OFFLINE set, or no network): download it once with "
            "the network on, or set path to a local folder of its parquet files"
        ) from None

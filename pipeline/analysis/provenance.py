"""Which version of the code made a result: the git commit checked out, and whether tracked files differ from it
(the model card's provenance line)."""

import os
import subprocess
from pathlib import Path



def git_commit(root: Path) -> str:
    """`git commit <sha>`, the commit checked out at `root`, with " + uncommitted changes" when a tracked file
    differs from it; "not a git repository" outside one.

    dvc.lock is left out of the comparison, since DVC rewrites it as the stages of a run finish, and so are
    untracked files (the pipeline's outputs are ignored; a new module counts once a tracked file imports it).
    `dvc exp run -S` edits params.yaml, so an experiment's card names its baseline commit + uncommitted changes:
    in the workspace, and in the temporary copy a queued run works in (a git repository at the baseline commit,
    the experiment's changes applied uncommitted).
    """
    try:
        head = _git(root, "rev-parse", "--verify", "HEAD")
        if head.returncode:
            reason = (head.stderr.strip().splitlines() or ["git failed"])[-1]
            return "not a git repository" if "not a git repository" in reason else f"unknown ({reason})"
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ":(exclude)dvc.lock")
    except OSError as exc:  # no git program
        return f"unknown ({exc.strerror}: git)"
    commit = f"git commit {head.stdout.strip()}"
    if status.returncode:
        return f"{commit} (whether files changed is not known: git status failed)"
    return commit + (" + uncommitted changes" if status.stdout.strip() else "")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git in `root`, its messages in English (to recognise "not a git repository")."""
    command = ["git", "-C", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)


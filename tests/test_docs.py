"""The docs site: its generated parts are up to date, it builds with no warning, and every shell block marked
`<!-- runnable -->` runs in a copy of the repository."""

import os
import re
import subprocess
import sys

import pytest
import typer

from pipeline.cli.main import app
from pipeline.upkeep.docs_pages import stale_docs
from tests.helpers.params import REPO, repo_params
from tests.helpers.workspace import committed_copy, run

RUNNABLE = re.compile(r"<!-- runnable -->\n```sh\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    """Every block marked runnable, as (page, its text), over README.md and docs/."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [(str(page.relative_to(REPO)), block) for page in pages for block in RUNNABLE.findall(page.read_text())]


BLOCKS = runnable_blocks()


def test_the_generated_pages_and_tables_are_up_to_date():
    stale = stale_docs(REPO, typer.main.get_command(app))

    assert not stale, f"stale: {', '.join(map(str, stale))}; run `pipeline dev docs --write`"


@pytest.mark.slow
def test_mkdocs_builds_the_site_with_no_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "params" / "index.html").is_file()


def test_some_blocks_are_marked_runnable():
    assert len(BLOCKS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("page, block", BLOCKS, ids=[f"{page}:{block[:40]}" for page, block in BLOCKS])
def test_a_runnable_block_runs_in_a_copy_of_the_repository(tmp_path, page, block):
    root = committed_copy(tmp_path / "repo", repo_params())
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = block.replace("\\\n", " ").replace("uv run ", "").replace("/tmp/", f"{scratch}/")

    run(root, "bash", "-euo", "pipefail", "-c", script, timeout=600)

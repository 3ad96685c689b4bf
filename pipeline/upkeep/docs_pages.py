"""`pipeline dev docs`: the generated parts of README.md and docs/, checked or rewritten.

Two kinds: whole pages (the params and command-line references) and regions inside hand-written pages, between
`<!-- generated: NAME -->` and `<!-- end: NAME -->` lines (the tables of measured results, the stage graph). A test
fails while any of them is stale, so a renamed option or a re-measured results file reaches the docs in the same
commit.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError
from pipeline.upkeep.docs_cli import cli_reference
from pipeline.upkeep.docs_params import params_reference
from pipeline.upkeep.docs_results import measured_table, recipe_table, repro_summary, repro_table, sample_table

PARAMS_PAGE = Path("docs/reference/params.md")
CLI_PAGE = Path("docs/reference/cli.md")
REGION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.DOTALL)


def stage_graph(root: Path) -> str:
    """The pipeline's stages as a Mermaid chart, one node per stage group (`dvc dag --collapse-foreach-matrix`)."""
    from dvc.commands.dag import _build, _show_mermaid
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        chart: str = _show_mermaid(_build(repo, collapse_foreach_matrix=True))
    return f"```mermaid\n{chart.strip()}\n```"


TABLE_REGION = "table-"
REGIONS: dict[str, Callable[[Path], str]] = {
    "sample-table": sample_table,
    "recipe-table": recipe_table,
    "repro-table": repro_table,
    "repro-summary": repro_summary,
    "stage-graph": stage_graph,
}


def region_text(name: str, root: Path) -> str:
    """A region's text: one of `REGIONS`, or `table-<name>`, the measured table of `reports/tables/<name>.json`."""
    if name.startswith(TABLE_REGION):
        return measured_table(root, name.removeprefix(TABLE_REGION))
    if name not in REGIONS:
        raise PipelineError(f"unknown generated region {name!r}; known: {', '.join(REGIONS)}, {TABLE_REGION}<name>")
    return REGIONS[name](root)


def whole_pages(root: Path, cli: Any) -> dict[Path, str]:
    """The generated pages, by path relative to `root`, as they should read; `cli` is the `pipeline` command."""
    return {PARAMS_PAGE: params_reference(root), CLI_PAGE: cli_reference(cli)}


def pages_with_regions(root: Path) -> list[Path]:
    """README.md and every page under docs/, relative to `root`: where generated regions may be."""
    return [Path("README.md"), *sorted(path.relative_to(root) for path in (root / "docs").rglob("*.md"))]


def with_regions_filled(text: str, root: Path, cache: dict[str, str]) -> str:
    """`text` with every generated region's body rendered afresh (each region rendered once, kept in `cache`)."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in cache:
            cache[name] = region_text(name, root)
        return f"{match[1]}\n{cache[name]}\n\n{match[4]}"

    return REGION.sub(fill, text)


def expected_docs(root: Path, cli: Any) -> dict[Path, str]:
    """Every file with generated content, as it should read, by path relative to `root`."""
    expected = whole_pages(root, cli)
    cache: dict[str, str] = {}
    for path in pages_with_regions(root):
        if path not in expected:
            text = (root / path).read_text()
            if REGION.search(text):
                expected[path] = with_regions_filled(text, root, cache)
    return expected


def stale_docs(root: Path, cli: Any) -> dict[Path, str]:
    """The files whose generated content is not what the code, params.yaml and reports/ give now, each with the
    text it should have."""
    return {
        path: text
        for path, text in expected_docs(root, cli).items()
        if not (root / path).is_file() or (root / path).read_text() != text
    }


def write_docs(root: Path, cli: Any) -> list[str]:
    """Rewrite (atomically) the files whose generated content is stale; the names of those rewritten."""
    stale = stale_docs(root, cli)
    for path, text in stale.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        write_text(root / path, text)
    return [str(path) for path in stale]

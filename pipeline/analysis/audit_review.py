"""`pipeline audit review DATASET`: a walk through the audit's suspects in the terminal, writing the reviewed files
split reads (`reviews/<dataset>/exclude.csv`, `relabel.csv`) and the images kept (`kept.csv`), as the browser's
review (`pipeline.serving.review`, `--web`) writes them (`pipeline.data.reviews.record`).

Each label suspect (path, given class, suggested class, score) is kept, excluded or relabelled to the suggestion;
each outlier kept or excluded. Answers already in the files (from either review) are kept and not asked again, and
an interrupted walk writes those given, so a review can stop and go on later. `--accept` takes every suggestion
without asking (relabel the suspects, exclude the outliers). The last line says the params edit that makes split use
the files.
"""

from collections.abc import Callable

import pandas as pd
import typer

from pipeline.config.datasets import SplitParams
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths
from pipeline.data.reviews import Decision, read_decisions, record, review_files

Ask = Callable[[str, str], str]
ANSWERS = {"k": Decision("keep"), "e": Decision("exclude")}


def review(dataset: str, split: SplitParams, paths: Paths, accept: bool = False, ask: Ask | None = None) -> dict:
    """Walk through the findings (see the module's docstring); returns how many paths each file lists."""
    folder = paths.audit_dir(dataset)
    if not (folder / "label_issues.csv").is_file():
        raise PipelineError(f"{folder}: no audit findings; run `dvc repro audit@{dataset}` first")
    files = review_files(dataset, split, paths.root)
    done, ask = set(read_decisions(files)), ask or _prompt
    suspects = pd.read_csv(folder / "label_issues.csv", dtype=str, keep_default_na=False)
    far = pd.read_csv(folder / "outliers.csv", dtype=str, keep_default_na=False)
    if not accept:
        typer.echo(
            f"{len(suspects)} label suspects and {len(far)} outliers ({len(done)} answered before); the images are in "
            f"{paths.raw_archive(dataset)}, the top suspects shown in {folder / 'plots'}/ (or use --web to see them)"
        )
    changes: dict[str, Decision | None] = {}
    try:
        for row in suspects[~suspects["path"].isin(done)].itertuples():
            choice = "r" if accept else ask(
                f"{row.path}: given {row.given}, suggested {row.suggested} ({row.score})", "ker"
            )
            changes[row.path] = Decision("relabel", row.suggested) if choice == "r" else ANSWERS[choice]
        for row in far[~far["path"].isin(done | set(changes))].itertuples():
            changes[row.path] = ANSWERS["e" if accept else ask(f"{row.path}: outlier ({row.score})", "ke")]
    finally:  # an interrupted walk keeps the answers given
        decided = record(files, changes)
    counts = {action: sum(d.action == action for d in decided.values()) for action in ("exclude", "relabel", "keep")}
    typer.echo(
        f"{files.exclude}: {counts['exclude']} to leave out; {files.relabel}: {counts['relabel']} to relabel "
        f"({counts['keep']} kept, in {files.kept}). Use them with split.{dataset}.exclude: {files.exclude} and "
        f"split.{dataset}.relabel: {files.relabel} in params.yaml"
    )
    return {"excluded": counts["exclude"], "relabelled": counts["relabel"], "kept": counts["keep"]}


def _prompt(question: str, choices: str) -> str:
    """One answer from the terminal: k(eep), e(xclude) or r(elabel), among `choices`."""
    names = {"k": "keep", "e": "exclude", "r": "relabel"}
    hint = " / ".join(f"[{choice}] {names[choice]}" for choice in choices)
    while True:
        answer = str(typer.prompt(f"{question}\n  {hint}", default="k")).strip().lower()[:1]
        if answer in choices:
            return answer
        typer.echo(f"  answer one of {', '.join(choices)}")

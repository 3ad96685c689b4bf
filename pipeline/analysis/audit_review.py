"""`pipeline audit review DATASET`: a walk through the audit's suspects in the terminal, writing the reviewed files
split reads (`reviews/<dataset>/exclude.csv`, `relabel.csv`).

Each label suspect (path, given class, suggested class, score) is kept, excluded or relabelled to the suggestion;
each outlier kept or excluded. Answers already in the files are kept and not asked again, so a review can stop and
go on later. `--accept` takes every suggestion without asking (relabel the suspects, exclude the outliers). The last
line says the params edit that makes split use the files.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer

from pipeline.config.datasets import REVIEWS, SplitParams
from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError
from pipeline.core.paths import Paths

Ask = Callable[[str, str], str]


def review(dataset: str, split: SplitParams, paths: Paths, accept: bool = False, ask: Ask | None = None) -> dict:
    """Walk through the findings (see the module's docstring); returns how many paths each file lists."""
    folder = paths.audit_dir(dataset)
    if not (folder / "label_issues.csv").is_file():
        raise PipelineError(f"{folder}: no audit findings; run `dvc repro audit@{dataset}` first")
    exclude_file = Path(split.exclude or f"{REVIEWS}/{dataset}/exclude.csv")
    relabel_file = Path(split.relabel or f"{REVIEWS}/{dataset}/relabel.csv")
    excluded = _read(exclude_file, ["path"])
    relabelled = _read(relabel_file, ["path", "label"])
    ask = ask or _prompt
    done = set(excluded["path"]) | set(relabelled["path"])
    suspects = pd.read_csv(folder / "label_issues.csv", dtype=str, keep_default_na=False)
    far = pd.read_csv(folder / "outliers.csv", dtype=str, keep_default_na=False)
    new_excluded, new_relabelled = [], []
    if not accept:
        typer.echo(
            f"{len(suspects)} label suspects and {len(far)} outliers ({len(done)} answered before); the images are in "
            f"{paths.raw_archive(dataset)}, the top suspects shown in {folder / 'plots'}/"
        )
    for row in suspects[~suspects["path"].isin(done)].itertuples():
        choice = "r" if accept else ask(f"{row.path}: given {row.given}, suggested {row.suggested} ({row.score})", "ker")
        if choice == "e":
            new_excluded.append(row.path)
        elif choice == "r":
            new_relabelled.append({"path": row.path, "label": row.suggested})
    for row in far[~far["path"].isin(done)].itertuples():
        if ("e" if accept else ask(f"{row.path}: outlier ({row.score})", "ke")) == "e":
            new_excluded.append(row.path)
    excluded = pd.concat([excluded, pd.DataFrame({"path": new_excluded})]).drop_duplicates("path")
    relabelled = pd.concat([relabelled, pd.DataFrame(new_relabelled, columns=["path", "label"])])
    relabelled = relabelled[~relabelled["path"].isin(excluded["path"])]
    for file, table in ((exclude_file, excluded), (relabel_file, relabelled)):
        file.parent.mkdir(parents=True, exist_ok=True)
        write_text(file, table.to_csv(index=False, lineterminator="\n"))
    typer.echo(
        f"{exclude_file}: {len(excluded)} to leave out; {relabel_file}: {len(relabelled)} to relabel. Use them with "
        f"split.{dataset}.exclude: {exclude_file} and split.{dataset}.relabel: {relabel_file} in params.yaml"
    )
    return {"excluded": len(excluded), "relabelled": len(relabelled)}


def _read(file: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_csv(file, dtype=str, keep_default_na=False) if file.is_file() else pd.DataFrame(columns=columns)


def _prompt(question: str, choices: str) -> str:
    """One answer from the terminal: k(eep), e(xclude) or r(elabel), among `choices`."""
    names = {"k": "keep", "e": "exclude", "r": "relabel"}
    hint = " / ".join(f"[{choice}] {names[choice]}" for choice in choices)
    while True:
        answer = str(typer.prompt(f"{question}\n  {hint}", default="k")).strip().lower()[:1]
        if answer in choices:
            return answer
        typer.echo(f"  answer one of {', '.join(choices)}")

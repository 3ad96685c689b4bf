"""`pipeline publish MODEL --repo OWNER/NAME`: the model's files and its card uploaded to the Hugging Face Hub, or
with `--dry-run DIR` written to a folder for a look first (`pipeline.sharing.publish`)."""

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import Model, user_errors
from pipeline.core.paths import Paths


@user_errors
def publish(
    model: Model,
    repo: Annotated[str, typer.Option("--repo", help="The Hub model repository, OWNER/NAME (created if missing).")],
    dry_run: Annotated[
        Path | None,
        typer.Option("--dry-run", help="Write the folder it would upload into this new folder, and upload nothing."),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository private (a new one only).")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="The branch to commit to (created if missing; default main).")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="The commit message.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="The Hub dataset id the card names (default: the model's dataset name)."),
    ] = None,
) -> None:
    """Upload a trained model to the Hugging Face Hub: models/<model>.pt, its ONNX export and calibration,
    labels.json and a model card (README.md) with the test split's figures as metadata. Token: HF_TOKEN or `hf auth
    login`."""
    from pipeline.sharing.publish import Upload, write_folder
    from pipeline.sharing.publish import publish as upload_model

    if dry_run is not None:
        names = write_folder(model, repo, dry_run, Paths(), dataset)
        typer.echo(f"wrote {dry_run}: {', '.join(names)} (nothing uploaded)")
        return
    url = upload_model(model, Upload(repo, private, revision, message), Paths(), dataset)
    typer.echo(f"published {model} to {url}")

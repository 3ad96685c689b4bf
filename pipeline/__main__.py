"""`python -m pipeline`: the same CLI as the `pipeline` console script."""

from pipeline.cli.main import app

app(prog_name="pipeline")

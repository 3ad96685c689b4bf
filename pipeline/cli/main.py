"""The `pipeline` command: every stage command (`pipeline.cli.stages`), the tools (`pipeline.cli.tools`) and
`pipeline predict` (`pipeline.cli.predict`)."""

from pipeline.cli import predict, tools
from pipeline.cli.stages import app

for command in (tools.bench, tools.report, tools.inspect, tools.push, tools.pull, predict.predict):
    app.command()(command)
app.command("make-images")(tools.make_images)
app.command("lr-find")(tools.lr_find)
app.add_typer(tools.sanity, name="sanity")

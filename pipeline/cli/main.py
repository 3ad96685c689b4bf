"""The `pipeline` command: every stage command (`pipeline.cli.stages`) and the tools (`pipeline.cli.tools`)."""

from pipeline.cli import tools
from pipeline.cli.stages import app

for command in (tools.bench, tools.report, tools.inspect, tools.push, tools.pull):
    app.command()(command)
app.command("make-images")(tools.make_images)
app.add_typer(tools.sanity, name="sanity")

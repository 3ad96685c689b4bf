"""The `pipeline` command: every stage command (`pipeline.cli.stages`), the tools (`pipeline.cli.tools`), `pipeline
tune` (`pipeline.cli.tune`), `pipeline predict` (`pipeline.cli.predict`), `pipeline serve` with `pipeline
bench-predict` (`pipeline.cli.serve`) and `pipeline publish` (`pipeline.cli.publish`)."""

from pipeline.cli import predict, publish, serve, tools, tune
from pipeline.cli.stages import app

for command in (
    tools.bench, tools.report, tools.inspect, tools.push, tools.pull, predict.predict, serve.serve, publish.publish
):
    app.command()(command)
app.command("make-images")(tools.make_images)
app.command("lr-find")(tools.lr_find)
app.command("params")(tools.show_params)
app.command("tune")(tune.tune)
app.command("bench-accuracy")(tools.bench_accuracy)
app.command("bench-repro")(tools.bench_repro)
app.command("bench-airbench")(tools.bench_airbench)
app.command("warm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(tools.warm)
app.command("bench-predict")(serve.bench_predict)
app.add_typer(tools.sanity, name="sanity")
app.add_typer(tools.dev, name="dev")

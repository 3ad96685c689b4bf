"""`pipeline serve`: a trained model behind an HTTP server (`pipeline.serving`), and `pipeline bench-predict`: how fast
predict and the server are. `pipeline.cli.main` adds both to the `pipeline` command."""

from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsFile, user_errors
from pipeline.cli.predict import model_file
from pipeline.serving import MAX_BATCH, MAX_BYTES

ModelArgument = Annotated[
    str,
    typer.Argument(help="A model under `models` in params.yaml (models/<name>.pt), or a model file (.pt; .onnx with "
                   "--backend onnx)."),
]
Backend = Annotated[str, typer.Option(help="torch (the .pt file) or onnx (the exported .onnx beside it).")]


@user_errors
def serve(
    model: ModelArgument,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    max_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted, in bytes; a larger one gets 413.")
    ] = MAX_BYTES,
    backend: Backend = "torch",
    top: Annotated[
        int | None, typer.Option(min=1, help="Classes per image in the answer (default 5, or all if fewer).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda; torch backend only.")] = "auto",
    max_batch: Annotated[
        int, typer.Option(min=1, help="Images the model scores in one call, from concurrent requests; 1: no batching.")
    ] = MAX_BATCH,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0, help="Wait this long for more requests to batch (0: only those already waiting).")
    ] = 0.0,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Serve a trained model over HTTP: POST /predict (images as multipart file fields named `file`; JSON), GET /
    (a form that shows the probabilities as bars), GET /health, GET /model (what the model is). Images are prepared
    with the preprocessing recorded in the model file, as `pipeline predict` prepares them."""
    import uvicorn

    from pipeline.inference.predict import check_top, open_backend
    from pipeline.serving.app import create_app
    from pipeline.serving.facts import model_facts

    path = model_file(model, params)
    scorer = open_backend(backend, path, device)
    if top is not None:
        check_top(top, scorer.preprocessing.classes)
    facts = model_facts(path, scorer, backend)
    app = create_app(
        scorer, facts, max_bytes=max_bytes, top=top, max_batch=max_batch, batch_wait=batch_wait_ms / 1000
    )
    typer.echo(f"serving {facts['name']} ({backend}) on http://{host}:{port}: POST /predict, GET / in a browser; "
               "Ctrl+C stops it")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@user_errors
def bench_predict(
    model: ModelArgument,
    images: Annotated[int, typer.Option(min=1, help="Generated photos to predict (320x240 JPEG).")] = 256,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients of the server.")] = 8,
    requests: Annotated[int, typer.Option(min=1, help="Requests each client sends (one image each).")] = 50,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Measure prediction speed on the CPU: images/s of predict with the torch and the ONNX backend at batch 1 and
    64 (the model alone, and with decoding), then the server's requests/s and latency under concurrent clients,
    with and without batching."""
    from pipeline.tools.serve_bench import bench, serving_bench_table

    typer.echo(serving_bench_table(bench(model_file(model, params), images=images, clients=clients, requests=requests)))

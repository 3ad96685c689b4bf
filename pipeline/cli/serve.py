"""`pipeline serve`: a trained model behind an HTTP server (`pipeline.serving`), and `pipeline bench-predict`: how fast
predict and the server are. `pipeline.cli.main` adds both to the `pipeline` command. `pipeline audit review NAME
--web` (a stage command's) serves its page through `serve_review`, with the same host and token rules."""

from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsFile, user_errors
from pipeline.cli.predict import model_file
from pipeline.config.datasets import SplitParams
from pipeline.serving import (
    MAX_BATCH,
    MAX_BYTES,
    MAX_CONCURRENT,
    MAX_FIELDS,
    MAX_IMAGES,
    TIMEOUT,
    TOKEN_ENV,
    Limits,
)

ModelArgument = Annotated[
    str,
    typer.Argument(help="A model under `models` in params.yaml (models/<name>.pt), or a model file (.pt; .onnx with "
                   "--backend onnx)."),
]
Backend = Annotated[str, typer.Option(help="torch (the .pt file) or onnx (the exported .onnx beside it).")]
REVIEW_PORT = 8001  # beside `pipeline serve`'s 8000
ReviewHost = Annotated[
    str, typer.Option(help="With `review --web`: the address to listen on (anything but loopback needs --token).")
]
ReviewPort = Annotated[int, typer.Option(min=1, max=65535, help="With `review --web`: the port to listen on.")]
ReviewToken = Annotated[
    str | None,
    typer.Option(envvar=TOKEN_ENV, show_envvar=True, help="With `review --web`: require this token (16+ characters), "
                 "entered once in the page's login form."),
]


@user_errors
def serve(
    model: ModelArgument,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface; anything but loopback needs --token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar=TOKEN_ENV, show_envvar=True, help="Require this token (16+ characters) on every route but "
                     "/health: `Authorization: Bearer TOKEN`, or the page's login form. Prefer the environment "
                     "variable: other users can read a command line."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Serve on a non-loopback --host without a token: anyone who reaches it can use it.")
    ] = False,
    max_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted, in bytes; a larger one gets 413.")
    ] = MAX_BYTES,
    max_images: Annotated[int, typer.Option(min=1, help="Files in one request; more get 413.")] = MAX_IMAGES,
    max_fields: Annotated[int, typer.Option(min=0, help="Text fields in one request; more get 413.")] = MAX_FIELDS,
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="Connections served at once; a request on one more gets 503 with Retry-After.")
    ] = MAX_CONCURRENT,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a request may take, upload included (408 or 503 after them); a "
                            "stop waits as long for the requests in progress.")
    ] = TIMEOUT,
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
    with the preprocessing recorded in the model file, as `pipeline predict` prepares them. SIGTERM or Ctrl+C stops
    it once the requests in progress are answered."""
    from pipeline.inference.predict import check_top, open_backend
    from pipeline.serving.app import create_app
    from pipeline.serving.auth import exposure
    from pipeline.serving.facts import model_facts
    from pipeline.serving.server import serve as run_server

    warning = exposure(host, token, insecure)
    path = model_file(model, params)
    scorer = open_backend(backend, path, device)
    if top is not None:
        check_top(top, scorer.preprocessing.classes)
    facts = model_facts(path, scorer, backend)
    limits = Limits(max_bytes, max_images, max_fields, max_concurrent, timeout)
    app = create_app(
        scorer, facts, limits=limits, token=token, top=top, max_batch=max_batch, batch_wait=batch_wait_ms / 1000
    )
    if warning:
        typer.secho(warning, fg=typer.colors.RED, bold=True, err=True)
    guarded = f"; every route but /health needs the token ({TOKEN_ENV})" if token else ""
    typer.echo(f"serving {facts['name']} ({backend}) on http://{host}:{port}: POST /predict, GET / in a browser"
               f"{guarded}; Ctrl+C stops it")
    run_server(app, host, port, limits)


def serve_review(dataset: str, split: SplitParams, host: str, port: int, token: str | None) -> None:
    """Serve the dataset's audit review page (`pipeline.serving.review`) on `host:port` until Ctrl+C; a non-loopback
    `host` needs `token`."""
    from pipeline.core.paths import Paths
    from pipeline.serving.auth import exposure
    from pipeline.serving.review import create_review_app, open_review
    from pipeline.serving.server import serve as run_server

    exposure(host, token, insecure=False)
    review = open_review(dataset, split, Paths())
    guarded = f"; the page asks for the token ({TOKEN_ENV}) once" if token else ""
    typer.echo(
        f"{len(review.suspects)} findings of {dataset}'s audit on http://{host}:{port}{guarded}; each decision is "
        f"written at once to {review.files.exclude}, {review.files.relabel} and {review.files.kept}; Ctrl+C stops it"
    )
    run_server(create_review_app(review, token), host, port, Limits())


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
    from pipeline.upkeep.serve_bench import bench, serving_bench_table

    typer.echo(serving_bench_table(bench(model_file(model, params), images=images, clients=clients, requests=requests)))

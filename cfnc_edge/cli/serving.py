"""Serving: serve."""

from __future__ import annotations

import typer

from cfnc_edge.cli.app import BackendOpt, PrecisionOpt, app


@app.command()
def serve(
    bundle: list[str] = typer.Option(..., "--bundle", "-b",
                                     help="Bundle folder, or NAME=PATH to name its model (repeatable: one model each)."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
    max_batch: int = typer.Option(8, help="Largest batch Triton hands the Inspector (1: no batching)."),
    queue_delay_ms: float = typer.Option(2.0, help="Longest a request waits in Triton's dynamic batcher."),
    instances: int = typer.Option(1, help="Inspector instances per model, run concurrently."),
    http_port: int = typer.Option(8000),
    grpc_port: int = typer.Option(8001),
    metrics_port: int = typer.Option(8002, help="Prometheus metrics at :PORT/metrics."),
    max_side: int = typer.Option(4096, help="Refuse frames larger than this on either side."),
    exit_timeout: int = typer.Option(30, help="On SIGTERM, seconds in-flight requests may take to finish."),
):
    """Serve bundles on NVIDIA Triton Inference Server (gRPC, HTTP, Prometheus metrics)."""
    import signal

    from cfnc_edge import api

    # SIGTERM (a supervisor, Kubernetes) drains and stops exactly like Ctrl+C
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    options = api.ServeOptions(backend=backend, precision=precision, max_batch=max_batch,
                               queue_delay_ms=queue_delay_ms, instances=instances, http_port=http_port,
                               grpc_port=grpc_port, metrics_port=metrics_port, max_side=max_side,
                               exit_timeout_s=exit_timeout)
    try:
        api.serve(bundle, options, log=lambda msg: typer.echo(msg, err=True))
    except KeyboardInterrupt:
        pass  # stopped before the server was up: nothing to drain
    typer.echo("server stopped", err=True)

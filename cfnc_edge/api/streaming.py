"""Streaming side of the API: inspect cameras, video files, URLs and folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sources import make_source


def stream(bundle: Bundle | Path | str | None, sources: list[str | int], options: StreamOptions | None = None,
           backend: str = "auto", precision: str = "fp32", threshold: float | None = None,
           output: Path | None = None, status: IO[str] | None = None,
           on_start=None, server: str | None = None, model: str | None = None) -> dict:
    """Inspect every frame of `sources` (camera indices, files, URLs, folders)
    until they end or the runner is stopped; returns the summary.

    `output`: JSON lines file (default: stdout). `on_start(runner)` is called
    once the runner exists, e.g. to connect a signal handler to `runner.stop`.
    `server` (grpc://HOST:PORT): inspect on a `cfnc-edge serve` server
    (`model`: its model name) instead of here; server outages are waited
    out and reported in the summary's `outages`.
    """
    if not sources:
        raise CfncError("give at least one --camera N or --source PATH|URL")
    options = options or StreamOptions()
    if server is None:
        if bundle is None:
            raise CfncError("give --bundle PATH, or --server grpc://HOST:PORT to inspect on a server")
        insp, runner_class = Inspector(bundle, backend, precision, threshold), StreamRunner
    else:
        from cfnc_edge.api.serving import connect

        log = (lambda msg: (status.write(f"\n{msg}\n"), status.flush())) if status is not None else None
        insp = connect(server, model, maps=bool(options.save or options.save_anomalies or options.show),
                       give_up_after_s=None, log=log)
        runner_class = _RemoteStreamRunner
    out = open(output, "w") if output else sys.stdout
    try:
        runner = runner_class(insp, [make_source(s) for s in sources], options, out=out, status=status)
        if on_start is not None:
            on_start(runner)
        summary = runner.run()
    finally:
        if output:
            out.close()
    if server is not None:
        summary["outages"] = [*summary.get("outages", []), *insp.outages]
        summary["reconnects"] = summary.get("reconnects", 0) + insp.reconnects
        insp.close()
    return summary


class _RemoteStreamRunner(StreamRunner):
    """Stopping also ends the client's wait for a server that went away."""

    def __init__(self, client, *args, **kwargs):
        super().__init__(client, *args, **kwargs)
        self._client = client

    def stop(self) -> None:
        self._client.stop()
        super().stop()

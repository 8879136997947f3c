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


def stream(bundle: Bundle | Path | str, sources: list[str | int], options: StreamOptions | None = None,
           backend: str = "auto", precision: str = "fp32", threshold: float | None = None,
           output: Path | None = None, status: IO[str] | None = None,
           on_start=None) -> dict:
    """Inspect every frame of `sources` (camera indices, files, URLs, folders)
    until they end or the runner is stopped; returns the summary.

    `output`: JSON lines file (default: stdout). `on_start(runner)` is called
    once the runner exists, e.g. to connect a signal handler to `runner.stop`.
    """
    if not sources:
        raise CfncError("give at least one --camera N or --source PATH|URL")
    insp = Inspector(bundle, backend, precision, threshold)
    out = open(output, "w") if output else sys.stdout
    try:
        runner = StreamRunner(insp, [make_source(s) for s in sources], options or StreamOptions(),
                              out=out, status=status)
        if on_start is not None:
            on_start(runner)
        return runner.run()
    finally:
        if output:
            out.close()

"""JSON lines: one object per inspected frame, to a file or stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from cfnc_edge.stream.sinks.base import StreamContext, Verdict


class JsonLinesSink:
    """Writes `Verdict.record()` lines. A file is created only in `open`, once
    the sources are up, so a stream that fails to start leaves an existing
    file as it was."""

    name = "json"
    lossless = True

    def __init__(self, path: Path | str | None = None, stream: IO[str] | None = None):
        self.path, self.stream = (Path(path) if path else None), stream
        self.out: IO[str] | None = None

    def open(self, ctx: StreamContext) -> None:
        self.out = open(self.path, "w") if self.path else (self.stream or sys.stdout)

    def write(self, v: Verdict) -> None:
        self.out.write(json.dumps(v.record()) + "\n")
        self.out.flush()  # whole lines only, also for whoever tails the file

    def close(self) -> None:
        if self.path and self.out is not None:
            self.out.close()

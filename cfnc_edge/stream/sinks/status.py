"""The status line on a terminal: frames, FPS, latency, drops, anomalies."""

from __future__ import annotations

import time
from typing import IO

from cfnc_edge.stream.sinks.base import StreamContext, Verdict


def status_text(s: dict) -> str:
    return (f"{s['frames']} frames  {s['fps']:.1f} fps  latency p50 {s['latency_p50_ms']:.1f} ms "
            f"p99 {s['latency_p99_ms']:.1f} ms  dropped {s['dropped']}  corrupt {s['corrupt']}  "
            f"anomalies {s['anomalies']}")


class StatusLineSink:
    """Rewrites one terminal line at most every `every_s` seconds."""

    name = "status"
    lossless = False

    def __init__(self, stream: IO[str], every_s: float = 0.5):
        self.stream, self.every_s = stream, every_s
        self.last = 0.0
        self.ctx: StreamContext | None = None

    def open(self, ctx: StreamContext) -> None:
        self.ctx = ctx

    def write(self, v: Verdict) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.stream.write("\r" + status_text(self.ctx.stats.summary()))
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")

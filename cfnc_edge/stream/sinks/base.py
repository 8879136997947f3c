"""The sink contract: what every output of a stream receives, and the thread it runs in."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from cfnc_edge.report.visualize import heat_scale, panel
from cfnc_edge.stream.naming import safe_name
from cfnc_edge.stream.stats import Stats


@dataclass
class StreamContext:
    """What sinks may know about the run: its sources, their output names, the counters."""

    sources: list  # FrameSource
    labels: list[str]  # unique source names, as in the JSON lines and metrics
    file_names: list[str]  # unique and safe as one file name, for anything written to disk
    stats: Stats
    log: Callable[[str], None]


@dataclass
class Verdict:
    """One inspected frame, as every sink sees it. `result` is Inspection-like:
    score, threshold, anomalous, normalized_score, full_map()."""

    source: int
    label: str
    file_name: str  # safe, unique per source
    frame_name: str | None  # the source's name for this frame (folders), None for video frames
    index: int
    timestamp: float
    latency_ms: float
    image: np.ndarray
    result: Any
    drift: Any = None  # DriftState (stream/drift.py) when the stream tests for drift
    _view: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self) -> dict:
        """The verdict as one JSON object (JSON lines, MQTT)."""
        r = self.result
        return {"source": self.label, "frame": self.index, "timestamp": round(self.timestamp, 3),
                "score": round(r.score, 4),
                "normalized_score": None if r.normalized_score is None else round(r.normalized_score, 4),
                "anomalous": r.anomalous, "latency_ms": round(self.latency_ms, 2)}

    def metadata(self) -> dict:
        """The record with what a saved frame needs to be reviewed later: its name, threshold and time."""
        return {**self.record(), "frame_name": self.frame_name, "threshold": self.result.threshold,
                "time": datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat(timespec="milliseconds")}

    def stem(self) -> str:
        """A file stem for this frame, unique within its source: the frame's own name, or its number."""
        return f"{self.index:06d}" if self.frame_name is None else safe_name(self.frame_name)

    def view(self) -> np.ndarray:
        """Frame and heatmap side by side, rendered once for all sinks that show or save it."""
        with self._lock:
            if self._view is None:
                r = self.result
                self._view = panel(self.image, r.full_map(), r.score, r.anomalous,
                                   heat_scale(r.threshold, r.score), width=min(640, self.image.shape[1]))
            return self._view


class Sink(Protocol):
    """An output of a stream. `open` runs once the sources are up, `write`
    gets each verdict (in its own thread, in order), `close` returns what the
    sink wants in the summary (or None).

    `lossless` sinks get every verdict: those that keep a record (JSON lines,
    files) and those whose `write` never blocks (MQTT has its own bounded
    buffer, metrics only count). The others (display, status line) show the
    newest verdict and skip older ones rather than fall behind.
    """

    name: str
    lossless: bool

    def open(self, ctx: StreamContext) -> None: ...

    def write(self, v: Verdict) -> None: ...

    def close(self) -> dict | None: ...


class SinkThread:
    """Runs one sink in its own thread behind a bounded queue, so that a slow
    sink delays neither inference nor the other sinks. A lossless sink's full
    queue holds the dispatcher back (its record stays complete); a lossy
    sink's drops its oldest verdict and counts it."""

    def __init__(self, sink: Sink, log: Callable[[str], None], depth: int = 64):
        self.sink, self.log = sink, log
        # a lossy sink waits for at most the newest two: what it shows stays current
        self.queue: queue.Queue = queue.Queue(maxsize=depth if sink.lossless else 2)
        self.skipped = self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"sink-{sink.name}")

    def start(self) -> None:
        self.thread.start()

    def put(self, v: Verdict | None) -> None:
        if self.sink.lossless or v is None:
            self.queue.put(v)
            return
        while True:
            try:
                self.queue.put_nowait(v)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.skipped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while (v := self.queue.get()) is not None:
            try:
                self.sink.write(v)
            except Exception as exc:  # noqa: BLE001 - one failing output must not end the stream
                self.errors += 1
                if self.errors == 1:
                    self.log(f"{self.sink.name}: {exc} (further errors of this output are counted, not shown)")

    def finish(self) -> dict:
        """Wait for the queued verdicts, close the sink; its summary entry."""
        self.put(None)
        self.thread.join()
        report = self.sink.close() or {}
        if self.skipped:
            report["skipped"] = self.skipped
        if self.errors:
            report["errors"] = self.errors
        return report

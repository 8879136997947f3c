"""What a stream counts, per source and in all; the summary and the metrics read it."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceStats:
    frames: int = 0  # inspected
    anomalies: int = 0
    dropped: int = 0  # stale frames of a live source replaced by newer ones
    corrupt: int = 0  # frames that could not be decoded
    reconnects: int = 0
    outages: int = 0
    state: str = "starting"  # running, retrying, ended, ended early, gave up, stopped
    drift: float | None = None  # the drift test martingale (stream/drift.py), None without a drift alarm
    drift_alarm: bool = False


COUNTERS = ("frames", "anomalies", "dropped", "corrupt", "reconnects", "outages")


@dataclass
class Stats:
    """Counters shared by the runner's threads; change them under `lock`."""

    labels: list[str]
    sources: list[SourceStats] = field(default_factory=list)
    outages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    started: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.sources = self.sources or [SourceStats() for _ in self.labels]

    def total(self, counter: str) -> int:
        return sum(getattr(s, counter) for s in self.sources)

    def summary(self) -> dict:
        with self.lock:
            lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
            elapsed = time.perf_counter() - self.started
            out = {c: self.total(c) for c in COUNTERS if c != "outages"}
            out.update({"outages": list(self.outages), "warnings": list(self.warnings),
                        "seconds": round(elapsed, 2), "fps": round(out["frames"] / max(elapsed, 1e-9), 2),
                        "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                        "latency_p99_ms": round(float(np.percentile(lat, 99)), 2),
                        "sources": {label: {k: v for k, v in vars(s).items() if v or k in ("frames", "state")}
                                    for label, s in zip(self.labels, self.sources)}})
        return out

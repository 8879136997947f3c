"""`--metrics-port`: Prometheus metrics of a stream, per source.

Counters are read from the runner's own counters when Prometheus scrapes,
so they are the numbers of the summary, never a second count that could
drift; latency is a histogram fed by each verdict.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from cfnc_edge.errors import CfncError
from cfnc_edge.stream.sinks.base import StreamContext, Verdict
from cfnc_edge.stream.stats import COUNTERS

_HELP = {"frames": "Frames inspected", "anomalies": "Frames judged anomalous",
         "dropped": "Stale frames of a live source dropped for newer ones",
         "corrupt": "Frames that could not be decoded", "reconnects": "Successful reopens of a source",
         "outages": "Times a source stopped delivering or could not be opened"}
_NAMES = {"dropped": "dropped_frames", "corrupt": "corrupt_frames", "outages": "source_outages"}


class _StatsCollector:
    def __init__(self, ctx: StreamContext):
        self.ctx = ctx

    def collect(self):
        st = self.ctx.stats
        with st.lock:
            rows = [(label, vars(s).copy()) for label, s in zip(self.ctx.labels, st.sources)]
            elapsed = max(time.perf_counter() - st.started, 1e-9)
        for c in COUNTERS:
            fam = CounterMetricFamily(f"cfnc_stream_{_NAMES.get(c, c)}", _HELP[c], labels=["source"])
            for label, s in rows:
                fam.add_metric([label], s[c])
            yield fam
        fps = GaugeMetricFamily("cfnc_stream_fps", "Frames inspected per second since the start",
                                labels=["source"])
        up = GaugeMetricFamily("cfnc_stream_source_up", "1 while a source delivers frames", labels=["source"])
        for label, s in rows:
            fps.add_metric([label], s["frames"] / elapsed)
            up.add_metric([label], 1.0 if s["state"] == "running" else 0.0)
        yield fps
        yield up
        tested = [(label, s) for label, s in rows if s["drift"] is not None]
        if tested:  # only a stream with a drift alarm (the bundle records its good scores) has these
            drift = GaugeMetricFamily("cfnc_stream_drift", "Drift test martingale (stream/drift.py): reaching the "
                                      "alarm level C happens by chance with probability <= 1/C", labels=["source"])
            alarm = GaugeMetricFamily("cfnc_stream_drift_alarm", "1 once the drift test has reached its alarm level",
                                      labels=["source"])
            for label, s in tested:
                drift.add_metric([label], s["drift"])
                alarm.add_metric([label], float(s["drift_alarm"]))
            yield drift
            yield alarm


class MetricsSink:
    """Serves /metrics on `port` (0: any free port, see `.port`) while the stream runs."""

    name = "metrics"
    lossless = True  # every latency counted; write() only observes a histogram

    def __init__(self, port: int, addr: str = "0.0.0.0"):
        self.port, self.addr = port, addr
        self.registry = CollectorRegistry()  # own registry: several runs in one process do not collide
        self.latency = Histogram("cfnc_stream_latency_seconds", "Capture to verdict", ["source"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))
        self.server = None

    def open(self, ctx: StreamContext) -> None:
        self.registry.register(_StatsCollector(ctx))
        try:
            self.server, _ = start_http_server(self.port, self.addr, registry=self.registry)
        except OSError as exc:
            raise CfncError(f"--metrics-port {self.port}: cannot serve metrics ({exc.strerror}); "
                            f"choose a free port") from exc
        self.port = self.server.server_port
        ctx.log(f"metrics: http://{self.addr}:{self.port}/metrics")

    def write(self, v: Verdict) -> None:
        self.latency.labels(v.label).observe(v.latency_ms / 1000)

    def close(self) -> dict:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        return {"port": self.port}

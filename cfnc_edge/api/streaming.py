"""Streaming side of the API: inspect cameras, video files, URLs, folders and Python frame sources."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import (
    AnnotatedSink,
    AnomalySink,
    DisplaySink,
    JsonLinesSink,
    Sink,
    StatusLineSink,
)
from cfnc_edge.stream.sinks.metrics import MetricsSink
from cfnc_edge.stream.sinks.mqtt import MqttOptions, MqttSink
from cfnc_edge.stream.sources import FrameSource, make_source


def stream_sinks(output: Path | str | None = None, save: Path | str | None = None,
                 save_anomalies: Path | str | None = None, show: bool = False,
                 mqtt: MqttOptions | str | None = None, metrics_port: int | None = None,
                 status: IO[str] | None = None) -> list[Sink]:
    """The sinks for the CLI's output options (JSON lines always: `output` or stdout)."""
    sinks: list[Sink] = [JsonLinesSink(output)]
    if save:
        sinks.append(AnnotatedSink(save))
    if save_anomalies:
        sinks.append(AnomalySink(save_anomalies))
    if show:
        sinks.append(DisplaySink())
    if mqtt:
        sinks.append(MqttSink(mqtt))
    if metrics_port is not None:
        sinks.append(MetricsSink(metrics_port))
    if status is not None and status.isatty():
        sinks.append(StatusLineSink(status))
    return sinks


def stream(bundle: Bundle | Path | str | None, sources: list[str | int | FrameSource], options: StreamOptions | None = None,
           backend: str = "auto", precision: str = "fp32", threshold: float | None = None,
           output: Path | str | None = None, *, save: Path | str | None = None,
           save_anomalies: Path | str | None = None, show: bool = False, mqtt: MqttOptions | str | None = None,
           metrics_port: int | None = None, sinks: list[Sink] = (), status: IO[str] | None = None,
           on_start=None, server: str | None = None, model: str | None = None, tile=None,
           tile_overlap: float = 0.0) -> dict:
    """Inspect every frame of `sources` (camera indices, files, URLs, folders,
    or FrameSource objects) until they end or the runner is stopped; returns
    the summary.

    Outputs: JSON lines to `output` (default stdout; the file is created only
    once the sources are up), annotated video/images in `save`, anomalous
    frames in `save_anomalies`, a window (`show`), MQTT (`mqtt`:
    mqtt://HOST:PORT/TOPIC or MqttOptions), Prometheus metrics on
    `metrics_port`, plus any `sinks` of your own. `status`: a text stream for
    outage lines (and the status line on a terminal). `on_start(runner)` is
    called once the runner exists, e.g. to connect a signal handler to
    `runner.stop`. `server` (grpc://HOST:PORT): inspect on a `cfnc-edge serve`
    server (`model`: its model name) instead of here; server outages are
    waited out and reported in the summary's `outages`. `tile`, `tile_overlap`:
    tile large frames, one map and verdict per frame (see `Inspector`).

        from cfnc_edge.api import stream
        summary = stream("bundle/", ["line1.mp4", 0], output="verdicts.jsonl",
                         mqtt="mqtt://broker:1883/line1/verdicts", metrics_port=9100)
    """
    if server is None:
        if bundle is None:
            raise CfncError("give --bundle PATH, or --server grpc://HOST:PORT to inspect on a server")
        insp, runner_class = Inspector(bundle, backend, precision, threshold, tile, tile_overlap), StreamRunner
    else:
        from cfnc_edge.api.serving import connect

        log = (lambda msg: (status.write(f"\n{msg}\n"), status.flush())) if status is not None else None
        insp = connect(server, model, maps=bool(save or save_anomalies or show), give_up_after_s=None, log=log)
        runner_class = _RemoteStreamRunner
    chosen = stream_sinks(output, save, save_anomalies, show, mqtt, metrics_port, status) + list(sinks)
    srcs = [make_source(s) if isinstance(s, (str, int)) else s for s in sources]
    runner = runner_class(insp, srcs, options or StreamOptions(), sinks=chosen, status=status)
    if on_start is not None:
        on_start(runner)
    summary = runner.run()
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

"""Streaming side of the API: inspect cameras, video files, URLs, folders and Python frame sources."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from cfnc_edge.api.inspection import InspectOptions
from cfnc_edge.api.validation import check, check_folder
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.scoring.threshold import normalized
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
from cfnc_edge.stream.sinks.web import WebSink
from cfnc_edge.stream.sources import FrameSource, make_source


def bundle_info(bundle: Bundle) -> dict:
    """Which bundle judged a frame, as the page and the review records name it."""
    return {"path": str(bundle.path), "revision": bundle.manifest.get("revision", {}).get("number"),
            "data": bundle.manifest.get("data", {}).get("root")}


def good_scores(insp: Inspector, drift_alarm: float, log) -> np.ndarray | None:
    """The bundle's good-image scores normalised like the verdicts', for the drift alarm (None: no alarm)."""
    recorded = insp.bundle.manifest.get("threshold", {}).get("good_scores")
    if drift_alarm <= 0 or insp.threshold is None:
        return None
    if not recorded:
        log("drift alarm off: the bundle records no good-image scores (bundles before the drift alarm); "
            "`cfnc-edge fit` or `cfnc-edge threshold` records them")
        return None
    return normalized(np.asarray(recorded, np.float64), insp.threshold)


def stream_sinks(output: Path | str | None = None, save: Path | str | None = None,
                 save_anomalies: Path | str | None = None, show: bool = False,
                 mqtt: MqttOptions | str | None = None, metrics_port: int | None = None,
                 status: IO[str] | None = None, web: str | int | None = None, web_token: str | None = None,
                 review: Path | str | None = None, bundle: dict | None = None,
                 drift_alarm: float | None = None) -> list[Sink]:
    """The sinks for the CLI's output options (JSON lines always: `output` or stdout)."""
    if review and web is None:
        raise CfncError("--review DIR saves what is reviewed on the page: give --web [HOST:]PORT too")
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
    if web is not None:
        sinks.append(WebSink(web, web_token, review, bundle, drift_alarm))
    if status is not None and status.isatty():
        sinks.append(StatusLineSink(status))
    return sinks


def stream(bundle: Bundle | Path | str | None, sources: list[str | int | FrameSource], options: StreamOptions | None = None,
           inspection: InspectOptions | None = None, output: Path | str | None = None, *, save: Path | str | None = None,
           save_anomalies: Path | str | None = None, show: bool = False, mqtt: MqttOptions | str | None = None,
           metrics_port: int | None = None, web: str | int | None = None, web_token: str | None = None,
           review: Path | str | None = None, sinks: list[Sink] = (), status: IO[str] | None = None,
           on_start=None, server: str | None = None, model: str | None = None) -> dict:
    """Inspect every frame of `sources` (camera indices, files, URLs, folders,
    or FrameSource objects) until they end or the runner is stopped; returns
    the summary.

    Outputs: JSON lines to `output` (default stdout; the file is created only
    once the sources are up), annotated video/images in `save`, anomalous
    frames in `save_anomalies`, a window (`show`), MQTT (`mqtt`:
    mqtt://HOST:PORT/TOPIC or MqttOptions), Prometheus metrics on
    `metrics_port`, a page on `web` ([HOST:]PORT; any host but this machine
    needs `web_token`) whose good / defect buttons save into `review`, plus
    any `sinks` of your own. The drift alarm (options.drift_alarm, stream/drift.py)
    tests every source against the bundle's good-image scores. `status`: a text stream for
    outage lines (and the status line on a terminal). `on_start(runner)` is
    called once the runner exists, e.g. to connect a signal handler to
    `runner.stop`. `server` (grpc://HOST:PORT): inspect on a `cfnc-edge serve`
    server (`model`: its model name) instead of here; server outages are
    waited out and reported in the summary's `outages`. `inspection`: backend,
    precision, threshold and tiling of the inspection here (default InspectOptions()).

        from cfnc_edge.api import stream
        summary = stream("bundle/", ["line1.mp4", 0], output="verdicts.jsonl",
                         mqtt="mqtt://broker:1883/line1/verdicts", metrics_port=9100)
    """
    options = options or StreamOptions()
    # --max-batch 0 waited forever for a batch that could hold no frame
    check(max_batch=options.max_batch, max_wait_ms=options.max_wait_ms, max_frames=options.max_frames,
          metrics_port=metrics_port, drift_alarm=options.drift_alarm)
    if output is not None and Path(output).is_dir():
        raise CfncError(f"--output {output} is a folder; give the JSON lines file to write")
    for folder, flag in ((save, "--save"), (save_anomalies, "--save-anomalies"), (review, "--review")):
        check_folder(folder, flag)
    log = (lambda msg: (status.write(f"\n{msg}\n"), status.flush())) if status is not None else (lambda msg: None)
    good, info = None, {"server": server}
    if server is None:
        if bundle is None:
            raise CfncError("give --bundle PATH, or --server grpc://HOST:PORT to inspect on a server")
        insp, runner_class = (inspection or InspectOptions()).inspector(bundle), StreamRunner
        good, info = good_scores(insp, options.drift_alarm, log), bundle_info(insp.bundle)
    else:
        from cfnc_edge.api.serving import connect

        insp = connect(server, model, maps=bool(save or save_anomalies or show or web is not None),
                       give_up_after_s=None, log=log if status is not None else None)
        runner_class = _RemoteStreamRunner
    chosen = stream_sinks(output, save, save_anomalies, show, mqtt, metrics_port, status, web, web_token, review,
                          info, options.drift_alarm if good is not None else None) + list(sinks)
    srcs = [make_source(s) if isinstance(s, (str, int)) else s for s in sources]
    runner = runner_class(insp, srcs, options, sinks=chosen, status=status, good_scores=good)
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


def review(folder: Path | str, bundle: Bundle | Path | str, web: str | int = 8080, web_token: str | None = None,
           review_dir: Path | str | None = None, inspection: InspectOptions | None = None):
    """Serve the review page over the frames a stream saved with `--save-anomalies`
    (`folder`): their good / defect buttons save into `review_dir` (default
    `folder`/reviewed), each frame is shown with the bundle's heatmap. Returns
    the running server (`.url`, `.stop()`); `cfnc-edge review` serves until Ctrl-C.
    `inspection`: how the heatmaps are made (default InspectOptions()).

        server = review("anomalies/", "bundle/", 8080)   # http://127.0.0.1:8080/
    """
    from cfnc_edge.stream.web.app import make_app
    from cfnc_edge.stream.web.review import ReviewStore
    from cfnc_edge.stream.web.saved import SavedBoard
    from cfnc_edge.stream.web.server import WebServer, check_token, is_local, parse_address

    host, port = parse_address(web)
    check_token(host, web_token)
    insp = (inspection or InspectOptions()).inspector(bundle)
    info = bundle_info(insp.bundle)
    store = ReviewStore(Path(review_dir) if review_dir else Path(folder) / "reviewed", info)
    store.open()
    board = SavedBoard(folder, insp, store, info)
    return WebServer(make_app(board, web_token, is_local(host)), host, port).start()

"""Live inspection: stream; the review page over saved anomalies: review."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.cli.app import BackendOpt, BundleOpt, PrecisionOpt, TileOpt, TileOverlapOpt, app

WebOpt = typer.Option(None, "--web", help="Serve the page on [HOST:]PORT (host 127.0.0.1 unless given).")
WebTokenOpt = typer.Option(None, "--web-token", envvar="CFNC_WEB_TOKEN",
                           help="Every request must carry it (?token= or Authorization: Bearer); needed for any "
                                "host but this machine.")


@app.command()
def stream(
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle folder (or use --server)."),
    camera: list[int] = typer.Option([], "--camera", "-c", help="Camera index (repeatable)."),
    source: list[str] = typer.Option([], "--source", "-s", help="Video file, RTSP/HTTP URL or image folder (repeatable)."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
    threshold: Optional[float] = typer.Option(None),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON lines file (default: stdout); created once the sources are up."),
    save: Optional[Path] = typer.Option(None, help="Write annotated video / images here."),
    save_anomalies: Optional[Path] = typer.Option(None, help="Save frames judged anomalous, with heatmaps."),
    show: bool = typer.Option(False, help="Show frames in a window (needs a display and the [display] extra)."),
    mqtt: Optional[str] = typer.Option(None, help="Publish verdicts to mqtt://HOST:PORT/TOPIC."),
    mqtt_anomalies_only: bool = typer.Option(False, help="Publish only anomalous frames."),
    mqtt_qos: int = typer.Option(1, help="MQTT QoS of the verdict messages (0, 1, 2)."),
    mqtt_status: bool = typer.Option(True, help="Retained online/offline/stopped status on TOPIC/status."),
    mqtt_buffer: int = typer.Option(1000, help="Messages kept while the broker is unreachable; older ones are dropped."),
    metrics_port: Optional[int] = typer.Option(None, help="Serve Prometheus metrics on this port (/metrics)."),
    web: Optional[str] = WebOpt,
    web_token: Optional[str] = WebTokenOpt,
    review: Optional[Path] = typer.Option(None, help="With --web: the page's good / defect buttons save the original "
                                                     "frame and its record into DIR/good and DIR/defect."),
    drift_alarm: float = typer.Option(100.0, help="Drift alarm level C: raised when a source's scores stop looking "
                                                  "like the bundle's good images; by chance with probability <= 1/C. "
                                                  "0: off."),
    max_batch: int = typer.Option(4, help="Largest batch of frames per backend call."),
    max_wait_ms: float = typer.Option(5.0, help="Longest a frame waits for a batch to fill."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after this many frames."),
    server: Optional[str] = typer.Option(None, help="Inspect on a `cfnc-edge serve` server: grpc://HOST:PORT."),
    model: Optional[str] = typer.Option(None, help="The server's model to use (default: cfnc)."),
    tile: Optional[str] = TileOpt,
    tile_overlap: float = TileOverlapOpt,
):
    """Inspect live: cameras, video files, streams or image folders; one JSON line per frame."""
    import signal

    from cfnc_edge import api

    options = api.StreamOptions(max_batch=max_batch, max_wait_ms=max_wait_ms, max_frames=max_frames,
                                drift_alarm=drift_alarm)
    mqtt_options = api.MqttOptions(mqtt, mqtt_anomalies_only, mqtt_qos, mqtt_status, mqtt_buffer) if mqtt else None
    inspection = api.InspectOptions(backend, precision, threshold, tile, tile_overlap)
    summary = api.stream(bundle, [*camera, *source], options, inspection, output,
                         save=save, save_anomalies=save_anomalies, show=show, mqtt=mqtt_options,
                         metrics_port=metrics_port, web=web, web_token=web_token, review=review,
                         status=sys.stderr, server=server, model=model,
                         on_start=lambda runner: signal.signal(signal.SIGTERM, lambda *_: runner.stop()))
    typer.echo("\nsummary: " + json.dumps(summary), err=True)
    for w in summary["warnings"]:
        typer.echo(f"warning: {w}", err=True)


@app.command("review")
def review_page(
    folder: Path = typer.Argument(..., help="A stream's --save-anomalies folder."),
    bundle: Path = BundleOpt,
    web: str = typer.Option("8080", "--web", help="Serve the page on [HOST:]PORT (host 127.0.0.1 unless given)."),
    web_token: Optional[str] = WebTokenOpt,
    review: Optional[Path] = typer.Option(None, help="Where good / defect go (DIR/good, DIR/defect); default "
                                                     "FOLDER/reviewed."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
):
    """Review saved anomalies on a page: good / defect per frame, for `cfnc-edge threshold` and `fit`."""
    import time

    from cfnc_edge import api

    server = api.review(folder, bundle, web, web_token, review, api.InspectOptions(backend, precision))
    typer.echo(f"review page: {server.url}" + ("?token=..." if web_token else "") + " (Ctrl-C to stop)", err=True)
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

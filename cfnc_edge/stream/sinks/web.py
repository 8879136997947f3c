"""`--web [HOST:]PORT`: a page for the people at the line (stream/web/).

Per source the newest annotated frame (over a WebSocket), FPS, latency,
counts, source health and outages, the score timeline with the threshold,
the drift test; a gallery of recent anomalies with good / defect buttons
that save the original frame under `--review DIR`. `write()` only records
the verdict (the board keeps references, bounded), so the sink is lossless
and never holds the pipeline: pictures are encoded for the browsers in the
server's threads, newest first, and the frames a slow browser missed are
counted as dropped views.
"""

from __future__ import annotations

from pathlib import Path

from cfnc_edge.errors import CfncError
from cfnc_edge.stream.sinks.base import StreamContext, Verdict
from cfnc_edge.stream.web.review import ReviewStore
from cfnc_edge.stream.web.server import check_token, is_local, parse_address


class WebSink:
    name = "web"
    lossless = True  # write() is a few appends under a lock

    def __init__(self, address: str | int, token: str | None = None, review: Path | str | None = None,
                 bundle: dict | None = None, drift_alarm: float | None = None):
        self.host, self.port = parse_address(address)
        check_token(self.host, token)
        self.token, self.bundle, self.drift_alarm = token, bundle or {}, drift_alarm
        self.store = ReviewStore(review, self.bundle) if review else None
        self.board = self.server = None

    def open(self, ctx: StreamContext) -> None:
        try:
            from cfnc_edge.stream.web.app import make_app
            from cfnc_edge.stream.web.live import LiveBoard
            from cfnc_edge.stream.web.server import WebServer
        except ImportError as exc:
            raise CfncError(f"--web needs the web extra ({exc.name} is missing): pip install 'cfnc-edge[web]'") from exc
        if self.store is not None:
            self.store.open()
        self.board = LiveBoard(ctx, self.store, self.bundle, self.drift_alarm)
        self.server = WebServer(make_app(self.board, self.token, is_local(self.host)), self.host, self.port).start()
        self.port = self.server.port
        ctx.log(f"web: {self.server.url}" + ("?token=..." if self.token else ""))

    def write(self, v: Verdict) -> None:
        self.board.add(v)

    def close(self) -> dict:
        if self.server is None:
            return {}
        self.board.closed = True
        self.server.stop()
        report = {"url": self.server.url, **{f"views_{k}": n for k, n in self.board.views().items()}}
        if self.store is not None:
            report["reviewed"] = self.store.counts()
        return report

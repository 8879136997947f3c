"""The board of a running stream: newest verdict per source, score timelines, recent anomalies.

`add()` runs in the web sink's thread for every verdict and only keeps
references (constant time, bounded memory); pictures are rendered and
encoded when a browser asks, in the server's threads, for the newest frame
only, so a slow browser costs views, never frames.
"""

from __future__ import annotations

import threading
from collections import deque

from cfnc_edge.stream.sinks.base import StreamContext, Verdict
from cfnc_edge.stream.web.board import ViewCounter, jpeg, review_state
from cfnc_edge.stream.web.review import ReviewStore


def _item(v: Verdict, store: ReviewStore | None) -> dict:
    r = v.result
    return {"id": f"{v.source}-{v.index}", "source": v.label, "frame": v.index, "score": round(r.score, 4),
            "normalized": None if r.normalized_score is None else round(r.normalized_score, 4),
            "anomalous": r.anomalous, "time": v.timestamp,
            "reviewed": store.reviewed(_name(v, store)) if store is not None else None}


def _name(v: Verdict, store: ReviewStore) -> str:
    return store.name(v.file_name, v.stem(), v.timestamp)


class LiveBoard(ViewCounter):
    mode = "live"

    def __init__(self, ctx: StreamContext, review: ReviewStore | None, bundle: dict, drift_alarm: float | None,
                 history: int = 300, gallery: int = 24, recent: int = 8):
        super().__init__()
        self.ctx, self.store, self.bundle, self.drift_alarm = ctx, review, bundle, drift_alarm
        n = len(ctx.labels)
        self.seq = [0] * n
        self.latest: list[Verdict | None] = [None] * n
        self.timeline = [deque(maxlen=history) for _ in range(n)]
        self.recent = [deque(maxlen=recent) for _ in range(n)]  # reviewable: any recent frame
        self.gallery: deque[Verdict] = deque(maxlen=gallery)
        self.lock = threading.Lock()
        self.closed = False
        self.threshold: float | None = None

    def add(self, v: Verdict) -> None:
        r = v.result
        value = r.normalized_score if r.normalized_score is not None else r.score
        point = [v.index, round(value, 4), int(bool(r.anomalous))]
        with self.lock:
            self.seq[v.source] += 1
            self.latest[v.source] = v
            self.timeline[v.source].append(point)
            self.recent[v.source].append(v)
            if r.anomalous:
                self.gallery.appendleft(v)
            self.threshold = r.threshold

    def newest(self, source: int) -> tuple[int, Verdict] | None:
        with self.lock:
            v = self.latest[source] if 0 <= source < len(self.latest) else None
            return None if v is None else (self.seq[source], v)

    def live_view(self, v: Verdict) -> tuple[bytes, dict]:
        return jpeg(v.view()), _item(v, self.store)

    def _find(self, item_id: str) -> Verdict | None:
        with self.lock:
            candidates = [*self.gallery, *(v for q in self.recent for v in q)]
        return next((v for v in candidates if f"{v.source}-{v.index}" == item_id), None)

    def item_jpeg(self, item_id: str) -> bytes | None:
        v = self._find(item_id)
        return None if v is None else jpeg(v.view())

    def review(self, item_id: str, label: str) -> dict | None:
        v = self._find(item_id)
        if v is None or self.store is None:
            return None
        return self.store.save(label, _name(v, self.store), v.image, v.metadata())

    def state(self) -> dict:
        summary = self.ctx.stats.summary()
        with self.lock:
            timeline = {label: list(t) for label, t in zip(self.ctx.labels, self.timeline)}
            gallery, threshold = list(self.gallery), self.threshold
            sources = [{"index": i, "label": label, "seq": s} for i, (label, s) in
                       enumerate(zip(self.ctx.labels, self.seq))]
        return {"mode": self.mode, "closed": self.closed, "summary": summary, "sources": sources,
                "timeline": timeline, "threshold": None if threshold is None else 0.5, "raw_threshold": threshold,
                "gallery": [_item(v, self.store) for v in gallery], "drift_alarm": self.drift_alarm,
                "views": self.views(), "bundle": self.bundle, "review": review_state(self.store, self.bundle)}

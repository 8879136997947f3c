"""What the page shows, whoever fills it: a running stream (live.py) or a folder of saved anomalies (saved.py).

The app (app.py) only talks to a Board: it never sees a path. Reviewable
frames are known by ids the board made up; a request can name an id, a
label and a source number, nothing else.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import cv2
import numpy as np

from cfnc_edge.stream.web.review import ReviewStore


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


class Board(Protocol):
    mode: str  # "live" or "review"
    closed: bool

    def state(self) -> dict: ...

    def newest(self, source: int) -> tuple[int, Any] | None:
        """(sequence number, frame) of a live source's newest verdict, None before the first."""

    def live_view(self, item: Any) -> tuple[bytes, dict]:
        """The JPEG of a live frame and what the page writes under it."""

    def item_jpeg(self, item_id: str) -> bytes | None: ...

    def review(self, item_id: str, label: str) -> dict | None:
        """Save the item under `label`; None if there is no such item (any more)."""

    def count_view(self, skipped: int) -> None: ...


class ViewCounter:
    """Live pictures sent to browsers and the ones a slow browser missed (newer ones replaced them)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.dropped = 0

    def count_view(self, skipped: int) -> None:
        with self.lock:
            self.sent += 1
            self.dropped += skipped

    def views(self) -> dict:
        with self.lock:
            return {"sent": self.sent, "dropped": self.dropped}


def review_state(store: ReviewStore | None, bundle: dict) -> dict | None:
    if store is None:
        return None
    return {**store.counts(), "folder": str(store.root),
            "commands": store.commands(bundle.get("path", "BUNDLE"), bundle.get("data"))}

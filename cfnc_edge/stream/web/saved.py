"""The board of `cfnc-edge review`: the frames a stream saved with `--save-anomalies`, after the fact.

Items are `<source>/<frame>.json` records with their original frame in
`<source>/frames/`, newest first; each is scored again by the bundle when it
is first shown (the heatmap of the bundle as it is now), one at a time.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.report.visualize import heat_scale, panel
from cfnc_edge.stream.sinks.files import ORIGINALS
from cfnc_edge.stream.web.board import ViewCounter, jpeg, review_state
from cfnc_edge.stream.web.review import ReviewStore


def _when(record: dict) -> float:
    try:
        return datetime.fromisoformat(record["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return float(record.get("timestamp", 0.0))


class SavedBoard(ViewCounter):
    mode = "review"

    def __init__(self, folder: Path | str, inspector, review: ReviewStore, bundle: dict, shown: int = 48):
        super().__init__()
        self.folder, self.insp, self.store, self.bundle, self.shown = Path(folder), inspector, review, bundle, shown
        self.items: dict[str, tuple[Path, dict]] = {}  # id -> (original frame, record)
        self.lock = threading.Lock()  # one inspection at a time
        self.cache: OrderedDict[str, bytes] = OrderedDict()
        self.closed = False
        self.scan()

    def scan(self) -> None:
        if not self.folder.is_dir():
            raise CfncError(f"{self.folder} does not exist: give the folder of a stream's --save-anomalies")
        found = []
        for meta in self.folder.glob("*/*.json"):
            original = meta.parent / ORIGINALS / f"{meta.stem}.png"
            try:
                record = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if original.is_file() and isinstance(record, dict):
                found.append((meta, original, record))
        if not found:
            raise CfncError(f"{self.folder} holds no saved anomalies (<source>/<frame>.json with "
                            f"<source>/{ORIGINALS}/<frame>.png): save them with `cfnc-edge stream ... "
                            "--save-anomalies DIR`")
        found.sort(key=lambda f: (_when(f[2]), f[2]["frame"] if isinstance(f[2].get("frame"), int) else -1),
                   reverse=True)
        self.items = {f"a{i}": (original, {**record, "saved_as": f"{meta.parent.name}/{meta.stem}"})
                      for i, (meta, original, record) in enumerate(found)}

    def _name(self, original: Path, record: dict) -> str:
        return self.store.name(original.parent.parent.name, original.stem, _when(record))

    def _info(self, item_id: str) -> dict:
        original, r = self.items[item_id]
        return {"id": item_id, "source": r.get("source", original.parent.parent.name), "frame": r.get("frame"),
                "score": r.get("score"), "normalized": r.get("normalized_score"), "anomalous": r.get("anomalous"),
                "time": _when(r), "reviewed": self.store.reviewed(self._name(original, r))}

    def newest(self, source: int) -> None:
        return None  # no live sources

    def live_view(self, item):
        raise NotImplementedError("a review board has no live view")

    def item_jpeg(self, item_id: str) -> bytes | None:
        if item_id not in self.items:
            return None
        with self.lock:
            if item_id not in self.cache:
                image = read_image(self.items[item_id][0])
                r = self.insp([image])[0]
                self.cache[item_id] = jpeg(panel(image, r.full_map(), r.score, r.anomalous,
                                                 heat_scale(r.threshold, r.score), width=min(640, image.shape[1])))
                while len(self.cache) > 64:
                    self.cache.popitem(last=False)
            return self.cache[item_id]

    def review(self, item_id: str, label: str) -> dict | None:
        if item_id not in self.items:
            return None
        original, record = self.items[item_id]
        return self.store.save(label, self._name(original, record), read_image(original), record)

    def state(self) -> dict:
        infos = [self._info(i) for i in self.items]
        pending = [x for x in infos if x["reviewed"] is None]
        return {"mode": self.mode, "closed": False, "summary": None, "sources": [], "timeline": {},
                "threshold": None, "gallery": pending[: self.shown], "saved": len(infos), "pending": len(pending),
                "drift_alarm": None, "views": self.views(), "bundle": self.bundle,
                "review": review_state(self.store, self.bundle)}

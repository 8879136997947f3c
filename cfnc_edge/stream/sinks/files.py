"""Pictures on disk: annotated video / images per source, and a review folder of anomalies.

Every path is the chosen folder + a name from stream.naming (unique per
source, one plain file name), so nothing lands outside the folder and two
sources never share a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from cfnc_edge.stream.sinks.base import StreamContext, Verdict

ORIGINALS = "frames"  # the untouched frames of --save-anomalies, beside their annotated pictures


class AnnotatedSink:
    """`--save`: frames with their heatmaps, as `<source>.mp4` for video-like
    sources, or `<source>/<frame name>.png` for sources of separate pictures."""

    name = "save"
    lossless = True

    def __init__(self, folder: Path | str):
        self.root = Path(folder)
        self.writers: dict[int, cv2.VideoWriter] = {}
        self.ctx: StreamContext | None = None

    def open(self, ctx: StreamContext) -> None:
        self.ctx = ctx
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, v: Verdict) -> None:
        view = v.view()
        if v.frame_name is not None:
            d = self.root / v.file_name
            d.mkdir(exist_ok=True)
            cv2.imwrite(str(d / f"{v.stem()}.png"), view)
            return
        w = self.writers.get(v.source)
        if w is None:
            w = cv2.VideoWriter(str(self.root / f"{v.file_name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                self.ctx.sources[v.source].fps, (view.shape[1], view.shape[0]))
            self.writers[v.source] = w
        w.write(view)

    def close(self) -> None:
        for w in self.writers.values():
            w.release()


class AnomalySink:
    """`--save-anomalies`: a folder to review later (`cfnc-edge review`): for each anomalous
    frame `<source>/<frame>.png` (frame and heatmap), the original frame as
    `<source>/frames/<frame>.png` and its record as `<source>/<frame>.json`."""

    name = "anomalies"
    lossless = True

    def __init__(self, folder: Path | str):
        self.root = Path(folder)
        self.saved = 0

    def open(self, ctx: StreamContext) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, v: Verdict) -> None:
        if not v.result.anomalous:
            return
        d = self.root / v.file_name
        (d / ORIGINALS).mkdir(parents=True, exist_ok=True)
        stem = v.stem()
        cv2.imwrite(str(d / f"{stem}.png"), v.view())
        cv2.imwrite(str(d / ORIGINALS / f"{stem}.png"), v.image)
        # the record last: a reader that finds it finds both pictures
        (d / f"{stem}.json").write_text(json.dumps(v.metadata()))
        self.saved += 1

    def close(self) -> dict:
        return {"saved": self.saved}

"""Reviewed frames on disk: `--review DIR` holds DIR/good and DIR/defect.

Each review writes the original frame as `<name>.png` and its record
(source, frame, score, threshold, bundle, time, label) as `<name>.json`, the
name built from the frame's source and stem through stream.naming, so that
nothing is written outside the two folders whatever a source is called. A
frame reviewed again moves to the other folder (the last word counts).
DIR/good is a folder of good images as `cfnc-edge threshold` and
`cfnc-edge fit` read them.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from cfnc_edge.bundle import atomic_write
from cfnc_edge.errors import CfncError
from cfnc_edge.stream.naming import safe_name

LABELS = ("good", "defect")


class ReviewStore:
    """The review folder; `counts()` says what it holds, `save()` adds a frame."""

    def __init__(self, root: Path | str, bundle: dict):
        self.root = Path(root)
        self.bundle = bundle  # {"path": ..., "revision": ...}: which bundle judged the frames
        self.lock = threading.Lock()
        self.labels: dict[str, tuple[str, bool]] = {}  # name -> (label, judged anomalous)

    def open(self) -> None:
        try:
            for label in LABELS:
                (self.root / label).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CfncError(f"--review {self.root}: cannot create the review folders ({exc.strerror})") from exc
        for label in LABELS:  # what earlier sessions reviewed counts too
            for meta in (self.root / label).glob("*.json"):
                try:
                    self.labels[meta.stem] = (label, bool(json.loads(meta.read_text()).get("anomalous")))
                except (OSError, ValueError):
                    continue

    def name(self, file_name: str, stem: str, timestamp: float) -> str:
        """One plain file name per frame: source, frame and capture time (two runs' frame 12 differ)."""
        when = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
        return safe_name(f"{file_name}-{stem}-{when}")

    def reviewed(self, name: str) -> str | None:
        with self.lock:
            return self.labels.get(name, (None,))[0]

    def save(self, label: str, name: str, image: np.ndarray, record: dict) -> dict:
        if label not in LABELS:
            raise CfncError(f"review label {label!r}: give good or defect")
        name = safe_name(name)  # callers pass safe names already; this keeps the folder's promise on its own
        meta = {**record, "label": label, "bundle": self.bundle,
                "reviewed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        folder = self.root / label
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise CfncError(f"cannot encode {folder / name}.png")
        with self.lock:
            # atomic: a kill mid-write must not leave a truncated PNG in good/,
            # which `cfnc-edge threshold` would then refuse
            atomic_write(folder / f"{name}.png", png.tobytes())
            atomic_write(folder / f"{name}.json", json.dumps(meta, indent=1).encode())
            for other in LABELS:
                if other != label:
                    for suffix in (".png", ".json"):
                        (self.root / other / f"{name}{suffix}").unlink(missing_ok=True)
            self.labels[name] = (label, bool(record.get("anomalous")))
        return {"saved": f"{label}/{name}.png", **self.counts()}

    def counts(self) -> dict:
        with self.lock:
            values = list(self.labels.values())
        return {"good": sum(lb == "good" for lb, _ in values), "defect": sum(lb == "defect" for lb, _ in values),
                "false_alarms": sum(lb == "good" and flagged for lb, flagged in values)}

    def commands(self, bundle_path: str, data_root: str | None) -> list[str]:
        """The commands that apply the reviews to the bundle."""
        good = self.root / "good"
        out = [f"cfnc-edge threshold --bundle {bundle_path} {good}"]
        if data_root:
            out.append(f"cfnc-edge fit --bundle {bundle_path} {data_root} {good}")
        return out

"""The Inspector: the one pipeline that infer, stream, eval and bench share.

    frames (BGR uint8, any size) -> preprocess -> features -> distance
        (Mahalanobis or nearest neighbour, as the bundle's scorer) -> anomaly map (unwarped, blurred) -> image score -> verdict
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.data.tiling import Tiling, cut_all, stitch
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw, preprocess, to_bgr
from cfnc_edge.runtime.backends import FeatureBackend, create_backend
from cfnc_edge.runtime.postprocess import to_frame_size
from cfnc_edge.scoring.loading import load_scorer
from cfnc_edge.scoring.threshold import normalized

STAGES = ("preprocess", "features", "distance", "postprocess")
# an untiled frame is resized to the model input whatever its shape: past this
# ratio between the two aspects its parts are squashed beyond what training saw
MAX_ASPECT_RATIO = 2.0


@dataclass
class Inspection:
    """Result for one frame. `map` is at model resolution (h x w of the model input;
    for a tiled frame, the stitched map of its tiles: data/tiling.py).

    `score` is the raw distance (the map's maximum); `normalized_score` maps
    it so that the threshold sits at 0.5 (0 for a perfect match, 1 from
    twice the threshold on), the convention anomalib users expect.
    """

    score: float
    threshold: float | None
    map: np.ndarray
    frame_shape: tuple[int, int]

    @property
    def anomalous(self) -> bool | None:
        # NaN (a damaged scorer, an fp16 overflow) fails the part: `score > threshold` would pass it
        return None if self.threshold is None else not self.score <= self.threshold

    @property
    def normalized_score(self) -> float | None:
        return None if self.threshold is None else float(normalized(self.score, self.threshold))

    def full_map(self) -> np.ndarray:
        """The anomaly map at the frame's own size."""
        return to_frame_size(self.map, self.frame_shape)


class Inspector:
    """The inspection pipeline of one bundle on one backend.

    `Inspector(bundle, backend="auto", precision="fp32", threshold=None)`;
    call it with a list of BGR uint8 frames (any sizes) to get one
    `Inspection` per frame. The backend is created by name through
    `create_backend` (or passed ready-made); it also decides where the
    distance and maps are computed. `timings` holds per-stage seconds.

    `tile` cuts each frame into model-sized tiles run as one batch, with one
    stitched map and one verdict per frame (data/tiling.py): "auto" (tiles
    of the model input size, in frame pixels), S, "HxW", (h, w) or a
    `Tiling`; `tile_overlap` is the fraction of a tile neighbours share.
    Default: the bundle's own tiling if it was trained on tiles, else none.

    On a backend with a frame path (torch-cuda) untiled frames run as one
    captured CUDA graph per (batch, frame size), resize to maps on the GPU
    (runtime/gpu/frame_graph.py); `timings` then holds its stages
    (host staging, the graph). `frame_path=False`, and tiling, keep the
    per-stage path (host resize, the model on the device, distance and maps).
    """

    def __init__(self, bundle: Bundle | Path | str, backend: str | FeatureBackend = "auto",
                 precision: str = "fp32", threshold: float | None = None,
                 tile: Tiling | str | int | tuple[int, int] | bool | None = None, tile_overlap: float = 0.0,
                 frame_path: bool = True):
        if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
            # NaN would flag nothing and a negative value everything
            raise CfncError(f"--threshold must be a finite number above 0, got {threshold!r}")
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        cfg = self.bundle.model_config
        self.image_size = as_hw(cfg["image_size"])  # (h, w)
        trained = self.bundle.manifest.get("tiling")
        self.tiling = Tiling.parse(tile, tile_overlap) or (Tiling.from_dict(trained) if trained else None)
        self.backend = backend if not isinstance(backend, str) else create_backend(self.bundle, backend, precision)
        scorer = load_scorer(self.bundle)
        self.scoring = self.backend.scoring(scorer)
        self.frame_path = None if self.tiling or not frame_path else self.backend.frame_path(scorer, self.image_size)
        if threshold is None and "threshold" in self.bundle.manifest:
            threshold = self.bundle.threshold
        self.threshold = threshold
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.aspect_warned = False

    def features(self, frames: list[np.ndarray]):
        """Model inputs (frames, or tiles already cut) -> the backend's features and ICA transforms."""
        t0 = time.perf_counter()
        batch = preprocess(frames, self.image_size)
        t1 = time.perf_counter()
        out = self.backend(batch)
        self.scoring.sync()
        self.timings["preprocess"].append(t1 - t0)
        self.timings["features"].append(time.perf_counter() - t1)
        return out

    def __call__(self, frames: list[np.ndarray]) -> list[Inspection]:
        if self.tiling is None and not self.aspect_warned:
            self._warn_if_squashed(frames)
        if self.frame_path is not None:
            maps, scores = self.frame_path([to_bgr(f) for f in frames], self.timings)
            return [Inspection(float(s), self.threshold, m, f.shape[:2]) for s, m, f in zip(scores, maps, frames)]
        with self.scoring.context():
            return self._run(frames)

    def _warn_if_squashed(self, frames: list[np.ndarray]) -> None:
        """Warn once (per Inspector, not per frame) when a frame's aspect is far from the model input's."""
        h, w = self.image_size
        for f in frames:
            fh, fw = f.shape[:2]
            # (fw / fh) / (w / h), without dividing
            if max(fw * h, fh * w) > MAX_ASPECT_RATIO * min(fw * h, fh * w):
                self.aspect_warned = True
                warnings.warn(f"a {fw}x{fh} frame is squashed to the model input {w}x{h} (aspects differ by more "
                              f"than {MAX_ASPECT_RATIO:g}x): its score may mean little; use --tile, or train on "
                              f"frames of that aspect", RuntimeWarning, stacklevel=3)
                return

    def _run(self, frames: list[np.ndarray]) -> list[Inspection]:
        if self.tiling is None:
            maps, scores = self._maps(frames)
            return [Inspection(float(s), self.threshold, m, f.shape[:2]) for s, m, f in zip(scores, maps, frames)]
        tiles, layouts = cut_all(frames, self.image_size, self.tiling)
        maps = self._maps(tiles)[0]
        out, first = [], 0
        for f, lay in zip(frames, layouts):
            m = stitch(maps[first:first + len(lay.origins)], lay)
            first += len(lay.origins)
            out.append(Inspection(float(m.max()), self.threshold, m, f.shape[:2]))
        return out

    def _maps(self, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs -> (host maps (B, h, w), host scores (B,))."""
        feats, thetas = self.features(frames)
        t0 = time.perf_counter()
        dist = self.scoring.distance(feats)
        self.scoring.sync()
        t1 = time.perf_counter()
        maps = self.scoring.maps(dist, thetas, self.image_size)
        scores = maps.reshape(len(maps), -1).max(1)
        maps, scores = self.scoring.to_host(maps), self.scoring.to_host(scores)
        self.timings["distance"].append(t1 - t0)
        self.timings["postprocess"].append(time.perf_counter() - t1)
        return maps, scores

    def reset_timings(self) -> None:
        self.timings.clear()

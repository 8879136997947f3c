"""The Inspector: the one pipeline that infer, stream, eval and bench share.

    frames (BGR uint8, any size) -> preprocess -> features -> Mahalanobis
        -> anomaly map (unwarped, blurred) -> image score -> verdict
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfnc_edge.bundle import GAUSSIAN, Bundle
from cfnc_edge.images import preprocess
from cfnc_edge.runtime.backends import FeatureBackend, create_backend
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.postprocess import anomaly_maps, to_frame_size

STAGES = ("preprocess", "features", "distance", "postprocess")


@dataclass
class Inspection:
    """Result for one frame. `map` is at model resolution (S x S)."""

    score: float
    anomalous: bool | None
    map: np.ndarray
    frame_shape: tuple[int, int]

    def full_map(self) -> np.ndarray:
        """The anomaly map at the frame's own size."""
        return to_frame_size(self.map, self.frame_shape)


class Inspector:
    def __init__(self, bundle: Bundle | Path | str, backend: str | FeatureBackend = "auto",
                 precision: str = "fp32", threshold: float | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        cfg = self.bundle.model_config
        self.image_size = int(cfg["image_size"])
        self.backend = backend if not isinstance(backend, str) else create_backend(self.bundle, backend, precision)
        g = self.bundle.tensors(GAUSSIAN)
        # Where the features come out on the GPU, the distance (CUDA kernel) and
        # the maps stay there too: only scores and maps come back to the host.
        self.on_gpu = getattr(self.backend, "device", "cpu") == "gpu"
        if self.on_gpu:
            from cfnc_edge.runtime.gpu.mahalanobis import (
                GpuMahalanobis,
                gpu_anomaly_maps,
            )

            self.distance = GpuMahalanobis(g["mean"], g["factor"])
            self._maps = gpu_anomaly_maps
        else:
            self.distance = CpuMahalanobis(g["mean"], g["factor"])
            self._maps = anomaly_maps
        if threshold is None and "threshold" in self.bundle.manifest:
            threshold = self.bundle.threshold
        self.threshold = threshold
        self.timings: dict[str, list[float]] = defaultdict(list)

    def features(self, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        batch = preprocess(frames, self.image_size)
        t1 = time.perf_counter()
        out = self.backend(batch)
        self._sync()
        self.timings["preprocess"].append(t1 - t0)
        self.timings["features"].append(time.perf_counter() - t1)
        return out

    def __call__(self, frames: list[np.ndarray]) -> list[Inspection]:
        if self.on_gpu:
            with self.backend.stream:
                return self._run(frames)
        return self._run(frames)

    def _sync(self) -> None:
        # GPU work is asynchronous: a stage's time is only known once it is done
        if self.on_gpu:
            self.backend.stream.synchronize()

    def _run(self, frames: list[np.ndarray]) -> list[Inspection]:
        feats, thetas = self.features(frames)
        t0 = time.perf_counter()
        dist = self.distance(feats)
        self._sync()
        t1 = time.perf_counter()
        maps = self._maps(dist, thetas, self.image_size)
        scores = maps.reshape(len(maps), -1).max(1)
        if self.on_gpu:
            import cupy as cp

            maps, scores = cp.asnumpy(maps), cp.asnumpy(scores)
        self.timings["distance"].append(t1 - t0)
        self.timings["postprocess"].append(time.perf_counter() - t1)
        return [
            Inspection(float(s), None if self.threshold is None else bool(s > self.threshold), m, f.shape[:2])
            for s, m, f in zip(scores, maps, frames)
        ]

    def reset_timings(self) -> None:
        self.timings.clear()

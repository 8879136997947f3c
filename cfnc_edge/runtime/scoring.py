"""Where distances and maps are computed: next to the features.

A feature backend hands the Inspector a `Scoring` for its device, so the
Inspector itself has no device branches: CPU backends score with NumPy and
OpenCV on the host; GPU backends keep features, distances and maps on the
device (runtime/gpu/scoring.py) and only scores and maps come back.
Which distance is computed follows the bundle's scorer tensors: a
per-position Gaussian (Mahalanobis), a memory bank (nearest neighbour), or
both fused (runtime/combined.py; on the GPU runtime/gpu/combined.py).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Protocol

import numpy as np

from cfnc_edge.runtime.combined import CpuCombined, fuse, is_combined
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.scoring.factor import gaussian_tensors
from cfnc_edge.scoring.inference import Inference


class Scoring(Protocol):
    def distance(self, features: Any) -> Any:
        """(B, C, h, w) backend output -> (B, h, w) distances, on the scoring device."""

    def maps(self, distances: Any, thetas: Any, size: tuple[int, int]) -> Any:
        """Distances + ICA transforms -> (B, h, w) anomaly maps in the input frame; size = (h, w)."""

    def to_host(self, array: Any) -> np.ndarray: ...

    def sync(self) -> None:
        """Wait for queued device work (so stage timings are true)."""

    def context(self) -> ContextManager:
        """Entered around a whole inspection (a GPU stream, or nothing)."""


def is_bank(scorer: dict[str, np.ndarray]) -> bool:
    """The scorer tensors of a bundle are a memory bank alone (else a per-position Gaussian, or both)."""
    return "bank" in scorer and not is_combined(scorer)


def already_scored(distances: np.ndarray) -> np.ndarray:
    """The distance step of a backend whose graph computes distances itself."""
    return distances


def cpu_distance(scorer: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    if is_combined(scorer):
        return CpuCombined(**{k: scorer[k] for k in ("mean", "factor", "bank", "center", "fusion", "pooled_shape")},
                           factor_scale=scorer.get("factor_scale"))
    if is_bank(scorer):
        return CpuNearestNeighbour(scorer["bank"], scorer["center"])
    return CpuMahalanobis(scorer["mean"], scorer["factor"], scale=scorer.get("factor_scale"))


class CpuScoring:
    """Scoring in host memory. `scorer` is the bundle's scorer tensors (Gaussian
    or memory bank); `distance` overrides the distance step (a graph that
    already emits distances)."""

    def __init__(self, scorer: dict[str, np.ndarray], distance: Callable[[np.ndarray], np.ndarray] | None = None):
        self.distance = distance or cpu_distance(scorer)

    @staticmethod
    def maps(distances: np.ndarray, thetas: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return anomaly_maps(distances, thetas, size)

    @staticmethod
    def to_host(array: np.ndarray) -> np.ndarray:
        return array

    def sync(self) -> None:
        pass

    def context(self) -> ContextManager:
        return contextlib.nullcontext()


def _cpu_mahalanobis(mean: np.ndarray, factor: np.ndarray, precision: str = "fp32"):
    """A freshly fitted float64 Gaussian as CPU inference scores with it: float32, the factor in `precision`."""
    return cpu_distance(gaussian_tensors({"mean": mean.astype(np.float32), "factor": factor.astype(np.float32)},
                                         precision))


# the steps a fitter scores held-out good images with (scoring/fitted.py): CPU inference's own
CPU_INFERENCE = Inference(mahalanobis=_cpu_mahalanobis, nearest=CpuNearestNeighbour, fuse=fuse, maps=anomaly_maps)

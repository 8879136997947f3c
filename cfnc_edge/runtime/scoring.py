"""Where distances and maps are computed: next to the features.

A feature backend hands the Inspector a `Scoring` for its device, so the
Inspector itself has no device branches: CPU backends score with NumPy and
OpenCV on the host; GPU backends keep features, distances and maps on the
device (runtime/gpu/scoring.py) and only scores and maps come back.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Protocol

import numpy as np

from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.postprocess import anomaly_maps


class Scoring(Protocol):
    def distance(self, features: Any) -> Any:
        """(B, d, h, w) features -> (B, h, w) distances, on the scoring device."""

    def maps(self, distances: Any, thetas: Any, size: int) -> Any:
        """Distances + ICA transforms -> (B, size, size) anomaly maps in the input frame."""

    def to_host(self, array: Any) -> np.ndarray: ...

    def sync(self) -> None:
        """Wait for queued device work (so stage timings are true)."""

    def context(self) -> ContextManager:
        """Entered around a whole inspection (a GPU stream, or nothing)."""


class CpuScoring:
    def __init__(self, gaussian: dict[str, np.ndarray]):
        self.distance = CpuMahalanobis(gaussian["mean"], gaussian["factor"], scale=gaussian.get("factor_scale"))

    @staticmethod
    def maps(distances: np.ndarray, thetas: np.ndarray, size: int) -> np.ndarray:
        return anomaly_maps(distances, thetas, size)

    @staticmethod
    def to_host(array: np.ndarray) -> np.ndarray:
        return array

    def sync(self) -> None:
        pass

    def context(self) -> ContextManager:
        return contextlib.nullcontext()

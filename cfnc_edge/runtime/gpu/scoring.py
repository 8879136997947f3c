"""Scoring on the GPU: the CUDA Mahalanobis kernel, the CuPy nearest-neighbour
search, or both fused (by the bundle's scorer), and GPU anomaly maps, on the
backend's CUDA stream, so features never leave the device."""

from __future__ import annotations

from typing import ContextManager

import numpy as np

from cfnc_edge.runtime.combined import is_combined
from cfnc_edge.runtime.gpu.combined import GpuCombined
from cfnc_edge.runtime.gpu.knn import GpuNearestNeighbour
from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis, gpu_anomaly_maps
from cfnc_edge.runtime.scoring import is_bank


class GpuScoring:
    """Distances and maps queued on `stream` (the backend's: TensorRT's or PyTorch's).
    `scorer` is the bundle's scorer tensors: a Gaussian, a memory bank, or both (combined)."""

    def __init__(self, scorer: dict[str, np.ndarray], stream):
        self.stream = stream
        with stream:
            if is_combined(scorer):
                self.distance = GpuCombined(scorer)
            elif is_bank(scorer):
                self.distance = GpuNearestNeighbour(scorer["bank"], scorer["center"])
            else:
                self.distance = GpuMahalanobis(scorer["mean"], scorer["factor"], scale=scorer.get("factor_scale"))

    def maps(self, distances, thetas, size: tuple[int, int]):
        # the warp is built on the host from the six numbers of each ICA
        # transform: read them through this stream, after the model wrote them
        return gpu_anomaly_maps(distances, self.to_host(thetas), size)

    def to_host(self, array) -> np.ndarray:
        """Copy on the backend's stream and wait for it. A plain cp.asnumpy
        would copy on the legacy default stream, which is not ordered after
        work on a non-blocking stream (TensorRT's, PyTorch's)."""
        import cupy as cp

        if not isinstance(array, cp.ndarray):
            return np.asarray(array)
        host = array.get(stream=self.stream)
        self.stream.synchronize()
        return host

    def sync(self) -> None:
        self.stream.synchronize()

    def context(self) -> ContextManager:
        return self.stream

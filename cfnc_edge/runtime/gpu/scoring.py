"""Scoring on the GPU: the CUDA Mahalanobis kernel or the CuPy nearest-neighbour
search (by the bundle's scorer), and GPU anomaly maps, on the backend's CUDA
stream, so features never leave the device."""

from __future__ import annotations

from typing import ContextManager

import numpy as np

from cfnc_edge.runtime.gpu.knn import GpuNearestNeighbour
from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis, gpu_anomaly_maps
from cfnc_edge.runtime.scoring import is_bank


class GpuScoring:
    def __init__(self, scorer: dict[str, np.ndarray], stream):
        self.stream = stream
        with stream:
            self.distance = (GpuNearestNeighbour(scorer["bank"], scorer["center"]) if is_bank(scorer)
                             else GpuMahalanobis(scorer["mean"], scorer["factor"]))

    @staticmethod
    def maps(distances, thetas, size: int):
        return gpu_anomaly_maps(distances, thetas, size)

    @staticmethod
    def to_host(array) -> np.ndarray:
        import cupy as cp

        return cp.asnumpy(array)

    def sync(self) -> None:
        self.stream.synchronize()

    def context(self) -> ContextManager:
        return self.stream

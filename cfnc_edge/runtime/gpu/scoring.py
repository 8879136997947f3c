"""Scoring on the GPU: the CUDA distance kernel and GPU anomaly maps, on the
backend's CUDA stream, so features never leave the device."""

from __future__ import annotations

from typing import ContextManager

import numpy as np

from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis, gpu_anomaly_maps


class GpuScoring:
    def __init__(self, gaussian: dict[str, np.ndarray], stream):
        self.stream = stream
        self.distance = GpuMahalanobis(gaussian["mean"], gaussian["factor"], scale=gaussian.get("factor_scale"))

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

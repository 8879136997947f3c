"""The combined scorer on the GPU: the CUDA Mahalanobis kernel and the CuPy
bank search on the two parts of the combined head, fused by the same code
as on the CPU (runtime/combined.py) with CuPy as the array module."""

from __future__ import annotations

import numpy as np

from cfnc_edge.model.combined_head import split_combined
from cfnc_edge.runtime.combined import fuse
from cfnc_edge.runtime.gpu.knn import GpuNearestNeighbour
from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis


class GpuCombined:
    """features (B, d + C, h, w), host or device -> fused distances (B, h, w) on the device."""

    def __init__(self, scorer: dict[str, np.ndarray]):
        self.gaussian = GpuMahalanobis(scorer["mean"], scorer["factor"], scale=scorer.get("factor_scale"))
        self.bank = GpuNearestNeighbour(scorer["bank"], scorer["center"])
        self.dim = int(scorer["mean"].shape[1])
        self.pooled_shape = tuple(int(v) for v in scorer["pooled_shape"])
        self.fusion = np.asarray(scorer["fusion"], np.float64)

    def __call__(self, features):
        import cupy as cp
        from cupyx.scipy import ndimage

        proj, pooled = split_combined(cp.asarray(features, dtype=cp.float32), self.dim, self.pooled_shape)
        return fuse(self.gaussian(proj), self.bank(pooled), self.fusion, cp, ndimage)

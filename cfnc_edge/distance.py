"""Mahalanobis distance on the CPU from the whitening factor."""

from __future__ import annotations

import numpy as np

from .gaussian import unpack


class CpuMahalanobis:
    """d(x) = ||W (x - mu)|| per position, W = C^-1 lower triangular.

    The factor is unpacked once at load; each call is one batched GEMM per
    position (P x [d x d] @ [d x B]), so a position's factor is read once for
    the whole batch.
    """

    def __init__(self, mean: np.ndarray, packed_factor: np.ndarray):
        self.positions, self.dim = mean.shape
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.factor = unpack(np.asarray(packed_factor, dtype=np.float32), self.dim)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """features (B, d, h, w) -> distances (B, h, w), float32."""
        b, d, h, w = features.shape
        if d != self.dim or h * w != self.positions:
            raise ValueError(f"features are {d}x{h}x{w}, the Gaussian expects {self.dim} channels "
                             f"at {self.positions} positions")
        x = features.reshape(b, d, h * w).transpose(2, 1, 0)  # (P, d, B)
        delta = x - self.mean[:, :, None]
        y = np.matmul(self.factor, delta)
        return np.sqrt(np.einsum("pdb,pdb->bp", y, y)).reshape(b, h, w)

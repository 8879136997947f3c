"""Nearest-neighbour distance to a memory bank on the GPU (CuPy, cuBLAS).

The bank is held in fp16 by default: half the memory and bandwidth, and the
tensor cores do the product that ranks the rows. As on the CPU
(runtime/knn.py), the distance to the row found is then recomputed from the
difference in fp32, so fp16 only decides which row is nearest; the bank is
centred (scoring/memory_bank.py), which keeps the ranking's rounding small.
"""

from __future__ import annotations

import numpy as np

BANK_CHUNK = 32768  # bank rows per product: bounds the (patches x rows) temporary


class GpuNearestNeighbour:
    """d(x) = min_b ||(x - center) - b||, fp16 or fp32 bank storage."""

    def __init__(self, bank: np.ndarray, center: np.ndarray, storage: str = "fp16"):
        import cupy as cp

        self.dtype = cp.float16 if storage == "fp16" else cp.float32
        self.bank = cp.asarray(bank, dtype=self.dtype)
        self.bank_sq = (self.bank.astype(cp.float32) ** 2).sum(1)
        self.center = cp.asarray(center, dtype=cp.float32)
        self.dim = bank.shape[1]

    def __call__(self, features):
        """features (B, C, h, w), host or device -> distances (B, h, w) float32 on the device."""
        import cupy as cp

        feats = cp.asarray(features, dtype=cp.float32)
        b, c, h, w = feats.shape
        if c != self.dim:
            raise ValueError(f"features have {c} channels, the memory bank {self.dim}")
        x = feats.transpose(0, 2, 3, 1).reshape(-1, c) - self.center
        xh = x.astype(self.dtype)
        best = cp.full(len(x), cp.inf, dtype=cp.float32)
        idx = cp.zeros(len(x), dtype=cp.int64)
        for s in range(0, len(self.bank), BANK_CHUNK):
            d = self.bank_sq[s:s + BANK_CHUNK][None, :] - 2.0 * (xh @ self.bank[s:s + BANK_CHUNK].T).astype(cp.float32)
            j = d.argmin(1)
            v = d[cp.arange(len(x)), j]
            better = v < best
            best = cp.where(better, v, best)
            idx = cp.where(better, j + s, idx)
        diff = x - self.bank[idx].astype(cp.float32)
        return cp.sqrt((diff * diff).sum(1)).reshape(b, h, w)

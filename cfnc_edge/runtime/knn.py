"""Nearest-neighbour distance to a memory bank on the CPU (NumPy/BLAS).

The search ranks bank rows by ||b||^2 - 2 x.b (one matrix product per bank
chunk, a running arg-minimum); the distance to the row found is then
recomputed from the difference itself. The expansion alone loses about
sqrt(eps * ||x||^2) near zero distance (cancellation, ~0.04 in fp32 on real
features), the recomputation keeps float64-level agreement, and the rank
order of near-ties only matters when their distances are equal to that same
rounding. Every backend (here, the exported graph, the GPU) does the same.
"""

from __future__ import annotations

import numpy as np

BANK_CHUNK = 8192  # bank rows per product: bounds the (patches x rows) temporary


def nearest_rows(x: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray, chunk: int = BANK_CHUNK,
                 skip: tuple[int, int] | None = None) -> np.ndarray:
    """Index of the nearest row of bank (M, C) for each row of x (N, C), never one of
    the rows skip = (lo, hi) (cross-fitting: the rows a held-out image contributed)."""
    best = np.full(len(x), np.inf, np.float32)
    idx = np.zeros(len(x), np.int64)
    rows = np.arange(len(x))
    for s in range(0, len(bank), chunk):
        d = bank_sq[s:s + chunk][None, :] - 2.0 * (x @ bank[s:s + chunk].T)
        if skip is not None:
            lo, hi = max(skip[0] - s, 0), min(skip[1] - s, d.shape[1])
            d[:, lo:max(lo, hi)] = np.inf
        j = d.argmin(1)
        v = d[rows, j]
        better = v < best
        best[better], idx[better] = v[better], j[better] + s
    return idx


class CpuNearestNeighbour:
    """d(x) = min_b ||(x - center) - b|| over the bank's (centred) rows, per feature-map position."""

    def __init__(self, bank: np.ndarray, center: np.ndarray):
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.center = np.asarray(center, dtype=np.float32)
        self.bank_sq = (self.bank * self.bank).sum(1)
        self.dim = self.bank.shape[1]

    def __call__(self, features: np.ndarray, skip: tuple[int, int] | None = None) -> np.ndarray:
        """features (B, C, h, w) -> distances (B, h, w), float32; `skip`: bank rows
        (lo, hi) to leave out, as if the bank had been built without them."""
        b, c, h, w = features.shape
        if c != self.dim:
            raise ValueError(f"features have {c} channels, the memory bank {self.dim}")
        x = np.asarray(features, np.float32).transpose(0, 2, 3, 1).reshape(-1, c) - self.center
        diff = x - self.bank[nearest_rows(x, self.bank, self.bank_sq, skip=skip)]
        return np.sqrt((diff * diff).sum(1)).reshape(b, h, w)

"""Packed storage of lower-triangular whitening factors (NumPy only).

Row-major packing: row i of the triangle starts at i(i+1)/2, so a d x d
factor takes d(d+1)/2 values. The runtime reads factors through these
helpers, which is why they import nothing heavier than NumPy.
"""

from __future__ import annotations

import numpy as np


def tril_index(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major packing of a lower triangle: row i starts at i(i+1)/2."""
    return np.tril_indices(dim)


def unpack(packed: np.ndarray, dim: int) -> np.ndarray:
    """Packed lower triangle (P, T) -> dense lower-triangular (P, d, d)."""
    rows, cols = tril_index(dim)
    dense = np.zeros((packed.shape[0], dim, dim), dtype=packed.dtype)
    dense[:, rows, cols] = packed
    return dense


def packed_dim(length: int) -> int:
    d = int((np.sqrt(8 * length + 1) - 1) / 2)
    if d * (d + 1) // 2 != length:
        raise ValueError(f"{length} is not a triangular number")
    return d

"""Mahalanobis distance on the CPU from the whitening factor."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cfnc_edge.scoring.packing import unpack


class CpuMahalanobis:
    """d(x) = ||W (x - mu)|| per position, W = C^-1 lower triangular.

    At batch 1 this is memory-bound matrix-vector work over P factors, and
    two things make it fast on a CPU (measured in benchmarks/results/distance-cpu.md):

    - W is kept as two block rows, [A 0] and [B C]: the zero upper-right
      quarter is neither stored nor read, 75% of the bytes of a full inverse,
      and every product is still one batched BLAS call;
    - positions are split across threads (NumPy releases the GIL in matmul),
      since a single core cannot draw the memory bandwidth.

    Each position's factor is read once per call and applied to every image
    of the batch.
    """

    def __init__(self, mean: np.ndarray, packed_factor: np.ndarray, threads: int | None = None):
        self.positions, self.dim = mean.shape
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        dense = unpack(np.asarray(packed_factor, dtype=np.float32), self.dim)
        n = threads or min(4, os.cpu_count() or 1)
        self.chunks = [slice(c[0], c[-1] + 1) for c in np.array_split(np.arange(self.positions), n) if len(c)]
        half = self.dim // 2
        # per chunk: [(first row, row end, W[rows, :row end])] for the two block rows
        self.blocks = [[(0, half, np.ascontiguousarray(dense[c, :half, :half])),
                        (half, self.dim, np.ascontiguousarray(dense[c, half:, :]))] for c in self.chunks]
        self.pool = ThreadPoolExecutor(len(self.chunks)) if len(self.chunks) > 1 else None

    def _chunk(self, i: int, delta: np.ndarray) -> np.ndarray:
        d = delta[self.chunks[i]]  # (p, d, B)
        s = np.zeros((d.shape[0], d.shape[2]), dtype=np.float32)
        for _, end, w in self.blocks[i]:
            y = np.matmul(w, d[:, :end])
            s += (y * y).sum(1)
        return s

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """features (B, d, h, w) -> distances (B, h, w), float32."""
        b, d, h, w = features.shape
        if d != self.dim or h * w != self.positions:
            raise ValueError(f"features are {d}x{h}x{w}, the Gaussian expects {self.dim} channels "
                             f"at {self.positions} positions")
        delta = features.reshape(b, d, h * w).transpose(2, 1, 0) - self.mean[:, :, None]  # (P, d, B)
        parts = (self.pool.map(self._chunk, range(len(self.chunks)), [delta] * len(self.chunks))
                 if self.pool is not None else [self._chunk(0, delta)])
        return np.sqrt(np.concatenate(list(parts))).T.reshape(b, h, w)

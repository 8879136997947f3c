"""Mahalanobis distance on the CPU from the whitening factor."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cfnc_edge.errors import BundleError
from cfnc_edge.runtime import cpu_kernel
from cfnc_edge.scoring.factor import Factor
from cfnc_edge.scoring.packing import unpack

KERNEL_MAX_DIM = 512  # MAX_D in kernels/mahalanobis_cpu.cpp


class CpuMahalanobis:
    """d(x) = ||W (x - mu)|| per position, W = C^-1 lower triangular.

    At batch 1 this is memory-bound matrix-vector work over P factors: the
    time is the bytes of the factor over the memory bandwidth
    (benchmarks/results/distance-cpu.md). So:

    - the factor is read in the bundle's storage precision, fp32, fp16 or
      int8 with per-row scales (scoring/factor.py), converted in registers
      by kernels/mahalanobis_cpu.cpp, arithmetic in fp32, in a layout of
      8-row column blocks (`blocked`) that keeps the loop at full vector
      width;
    - positions are split across threads (the kernel call releases the
      GIL), since a single core cannot draw the memory bandwidth;
    - each position's factor is read once per call and applied to up to 8
      images at a time.

    Without a C++ compiler the same distances come from NumPy: the factor
    dequantised to fp32 as two block rows [A 0] and [B C] (the zero quarter
    neither stored nor read), one batched BLAS call per block.
    """

    def __init__(self, mean: np.ndarray, packed_factor: np.ndarray, threads: int | None = None,
                 scale: np.ndarray | None = None, use_kernel: bool = True):
        self.positions, self.dim = mean.shape
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        values = np.ascontiguousarray(packed_factor)
        if values.dtype == np.float64:  # a freshly fitted factor: stored and used as fp32
            values = values.astype(np.float32)
        factor = Factor(values, None if scale is None else np.ascontiguousarray(scale, dtype=np.float32))
        self.precision = factor.precision
        n = threads or min(4, os.cpu_count() or 1)
        self.chunks = [slice(c[0], c[-1] + 1) for c in np.array_split(np.arange(self.positions), n) if len(c)]
        self.pool = ThreadPoolExecutor(len(self.chunks)) if len(self.chunks) > 1 else None
        self.kernel = cpu_kernel.load() if use_kernel and self.dim <= KERNEL_MAX_DIM else None
        if self.kernel is not None:
            rows = self.kernel.cfnc_rows()
            self.factor = Factor(blocked(factor.values, self.dim, rows),
                                 None if factor.scale is None else _pad_rows(factor.scale, rows))
            self.implementation = f"C++ kernel ({self.precision} factor)"
            return
        if use_kernel:
            warnings.warn("no C++ compiler could build kernels/mahalanobis_cpu.cpp (or d > "
                          f"{KERNEL_MAX_DIM}): the distance step runs in NumPy with an fp32 factor", stacklevel=2)
        dense = factor.dense(self.dim).astype(np.float32)
        half = self.dim // 2
        # per chunk: [(row end, W[rows, :row end])] for the two block rows
        self.blocks = [[(half, np.ascontiguousarray(dense[c, :half, :half])),
                        (self.dim, np.ascontiguousarray(dense[c, half:, :]))] for c in self.chunks]
        self.implementation = f"NumPy block rows (fp32 factor from {self.precision})"

    def _kernel_chunk(self, i: int, feats: np.ndarray, out: np.ndarray) -> None:
        c = self.chunks[i]
        cpu_kernel.squared_distances(self.kernel, feats, self.mean, self.factor.values, self.factor.scale, out,
                                     c.start, c.stop)

    def _numpy_chunk(self, i: int, feats: np.ndarray, out: np.ndarray) -> None:
        c = self.chunks[i]
        d = feats[:, :, c].transpose(2, 1, 0) - self.mean[c, :, None]  # (p, d, B)
        s = np.zeros((d.shape[0], d.shape[2]), dtype=np.float32)
        for end, w in self.blocks[i]:
            y = np.matmul(w, d[:, :end])
            s += (y * y).sum(1)
        out[:, c] = s.T

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """features (B, d, h, w) -> distances (B, h, w), float32."""
        b, d, h, w = features.shape
        check_shape((d, h, w), self.dim, self.positions)
        feats = np.ascontiguousarray(features, dtype=np.float32).reshape(b, d, h * w)
        out = np.empty((b, h * w), dtype=np.float32)
        run = self._kernel_chunk if self.kernel is not None else self._numpy_chunk
        n = len(self.chunks)
        if self.pool is not None:
            list(self.pool.map(run, range(n), [feats] * n, [out] * n))
        else:
            run(0, feats, out)
        return np.sqrt(out, out=out).reshape(b, h, w)


def check_shape(dhw: tuple[int, int, int], dim: int, positions: int) -> None:
    """The model's features must be what the bundle's Gaussian was fitted on: they
    differ only when the manifest was edited or files come from different bundles."""
    d, h, w = dhw
    if d != dim or h * w != positions:
        raise BundleError(f"the model gives {d}x{h}x{w} features but the bundle's Gaussian expects {dim} channels "
                          f"at {positions} positions: its manifest and files disagree (edited, or from different "
                          "bundles); re-create it or `cfnc-edge bundle rollback`")


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    pad = -a.shape[1] % rows
    return np.ascontiguousarray(np.pad(a, ((0, 0), (0, pad))))


def blocked(packed: np.ndarray, dim: int, rows: int, chunk: int = 256) -> np.ndarray:
    """Packed factor (P, d(d+1)/2) -> the kernel's layout (P, dpad(dpad+rows)/2),
    same dtype: rows in blocks of `rows`, each block stored column by column
    up to its last row's diagonal, zeros above the diagonal and past d."""
    p = packed.shape[0]
    dpad = dim + (-dim % rows)
    out = np.empty((p, dpad * (dpad + rows) // 2), dtype=packed.dtype)
    for c in range(0, p, chunk):  # chunks of positions keep the dense temporaries small
        full = np.zeros((min(chunk, p - c), dpad, dpad), dtype=packed.dtype)
        full[:, :dim, :dim] = unpack(packed[c:c + chunk], dim)
        out[c:c + chunk] = np.concatenate([full[:, r0:r0 + rows, :r0 + rows].transpose(0, 2, 1).reshape(len(full), -1)
                                           for r0 in range(0, dpad, rows)], 1)
    return out

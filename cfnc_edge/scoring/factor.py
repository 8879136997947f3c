"""Storage precision of the whitening factor (NumPy only).

At batch 1 the distance step reads the whole factor once per frame and does
two flops per value read, so its time is the factor's size over the memory
bandwidth. Storing it in fewer bytes is the one lever left:

- ``fp32``: as fitted (the reference);
- ``fp16``: IEEE half, ~3 significant digits, 2 bytes a value;
- ``int8``: symmetric int8 per row of each position's triangle, one fp32
  scale per row (max |w| / 127 over the row), 1 byte a value. Because the
  scale is per row, it factors out of the row's dot product:
  y_i = s_i * sum_k q_ik x_k, so dequantisation is a cast plus one multiply
  per row, as in weight-only quantised GEMV.

Arithmetic is fp32 in every case. The bundle keeps the fp32 factor; the
precision chosen for it (manifest ``gaussian.factor_precision``) is applied
when it is loaded (scoring/loading.py), so switching back loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.scoring.packing import unpack

FACTOR_PRECISIONS = ("fp32", "fp16", "int8")
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass
class Factor:
    """A packed factor (P, d(d+1)/2) in its storage dtype, and for int8 the
    per-row scales (P, d) float32."""

    values: np.ndarray
    scale: np.ndarray | None = None

    @property
    def precision(self) -> str:
        return {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16", np.dtype(np.int8): "int8"}[self.values.dtype]

    def dense(self, dim: int) -> np.ndarray:
        """The (P, d, d) lower-triangular factor these values stand for, float64."""
        w = unpack(self.values.astype(np.float64), dim)
        return w if self.scale is None else w * self.scale[:, :, None]


def check_precision(precision: str) -> str:
    if precision not in FACTOR_PRECISIONS:
        raise CfncError(f"unknown factor precision {precision!r}; choose from {', '.join(FACTOR_PRECISIONS)}")
    return precision


def compress(packed: np.ndarray, precision: str) -> Factor:
    """Packed factor (P, T) -> its storage in `precision`."""
    check_precision(precision)
    if precision == "fp32":
        return Factor(np.ascontiguousarray(packed, dtype=np.float32))
    if precision == "fp16":
        return Factor(np.ascontiguousarray(packed, dtype=np.float16))
    dim = int((np.sqrt(8 * packed.shape[1] + 1) - 1) / 2)
    dense = unpack(np.asarray(packed, dtype=np.float32), dim)
    scale = np.abs(dense).max(2) / 127  # (P, d): per row; the diagonal is > 0, so never 0
    rows, _ = np.tril_indices(dim)
    q = np.rint(packed / scale[:, rows]).clip(-127, 127).astype(np.int8)
    return Factor(q, scale.astype(np.float32))


def gaussian_tensors(tensors: dict[str, np.ndarray], precision: str) -> dict[str, np.ndarray]:
    """The bundle's Gaussian with the factor in its storage precision
    (``factor`` in that dtype, plus ``factor_scale`` for int8): what the
    scoring implementations take."""
    f = compress(tensors["factor"], precision)
    out = {"mean": tensors["mean"], "factor": f.values}
    if f.scale is not None:
        out["factor_scale"] = f.scale
    return out

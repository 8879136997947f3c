"""The combined scorer's distance: Gaussian and memory bank, each divided by
the mean image score of held-out good images under it, summed.

The two distances live on different grids (Mahalanobis at stride 4, the
bank at stride 8); the bank's is resized onto the Gaussian's grid with the
same half-pixel bilinear rule as the anomaly maps, so the sum is one
distance map and everything after it (unwarp, blur, image score, threshold)
is the same code as for a single scorer. Since resizing, unwarping and
blurring are linear, the fused map is the same normalised sum of the two
scorers' own maps (up to the resize being done in two steps).

`fuse` and `bilinear_resize` take the array module (NumPy or CuPy), so the
CPU scorer here and the GPU one (runtime/gpu/combined.py) run the same code.
"""

from __future__ import annotations

import numpy as np

from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.knn import CpuNearestNeighbour

# what the Gaussian's distances, then the bank's, are divided by: the scorer tensor "fusion"
FUSION_FIELDS = ("gaussian_scale", "bank_scale")


def split_combined(features, dim: int, pooled_shape: tuple[int, int]):
    """A combined head's output (B, d + C, h, w) -> (projection (B, d, h, w), pooled (B, C, sh, sw)).

    The pooled part was repeated onto the h x w grid by nearest-neighbour
    resizing (source row floor(i * sh / h)); row ceil(j * h / sh) is a copy of
    source row j, so taking those rows and columns gives the pooled map back
    exactly. Works on NumPy, CuPy and torch arrays alike.
    """
    (h, w), (sh, sw) = features.shape[-2:], pooled_shape
    rows = [(j * h + sh - 1) // sh for j in range(sh)]
    cols = [(j * w + sw - 1) // sw for j in range(sw)]
    return features[:, :dim], features[:, dim:][:, :, rows][:, :, :, cols]


def is_combined(scorer: dict[str, np.ndarray]) -> bool:
    return "fusion" in scorer


def bilinear_resize(x, h: int, w: int, xp=np):
    """(B, sh, sw) -> (B, h, w) float32, half-pixel bilinear with clamped borders
    (OpenCV's INTER_LINEAR when enlarging, which is the only use here)."""
    def axis(n_out: int, n_in: int):
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(c).astype(np.int64)
        frac = (c - lo).astype(np.float32)
        return xp.asarray(lo), xp.asarray(np.minimum(lo + 1, n_in - 1)), xp.asarray(frac)
    (r0, r1, fr), (c0, c1, fc) = axis(h, x.shape[-2]), axis(w, x.shape[-1])
    x = x.astype(xp.float32)
    rows = x[:, r0] * (1 - fr)[:, None] + x[:, r1] * fr[:, None]
    return rows[:, :, c0] * (1 - fc) + rows[:, :, c1] * fc


def fuse(gaussian, bank, fusion, xp=np):
    """(B, h, w) Mahalanobis + (B, sh, sw) bank distances -> (B, h, w) fused, float32."""
    g_scale, k_scale = (float(v) for v in fusion)
    h, w = gaussian.shape[-2:]
    up = bilinear_resize(bank, h, w, xp) if bank.shape[-2:] != (h, w) else bank
    return (gaussian / g_scale + up / k_scale).astype(xp.float32)


class CpuCombined:
    """features (B, d + C, h, w) of a combined head -> the fused distance (B, h, w)."""

    def __init__(self, mean: np.ndarray, factor: np.ndarray, bank: np.ndarray, center: np.ndarray,
                 fusion: np.ndarray, pooled_shape, factor_scale: np.ndarray | None = None):
        self.gaussian = CpuMahalanobis(mean, factor, scale=factor_scale)
        self.bank = CpuNearestNeighbour(bank, center)
        self.dim, self.pooled_shape = int(mean.shape[1]), tuple(int(v) for v in pooled_shape)
        self.fusion = np.asarray(fusion, np.float64)

    def parts(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two scorers' own distances: (B, h, w) Mahalanobis, (B, s, s) bank."""
        proj, pooled = split_combined(np.asarray(features), self.dim, self.pooled_shape)
        return self.gaussian(proj), self.bank(pooled)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return fuse(*self.parts(features), self.fusion)

"""The combined scorer's distance: Gaussian and memory bank, each divided by
the mean image score of held-out good images under it, summed.

The two distances live on different grids (Mahalanobis at stride 4, the
bank at stride 8); the bank's is resized onto the Gaussian's grid with the
same half-pixel bilinear rule as the anomaly maps, so the sum is one
distance map and everything after it (unwarp, blur, image score, threshold)
is the same code as for a single scorer. Since resizing, unwarping and
blurring are linear, the fused map is the same normalised sum of the two
scorers' own maps (up to the resize being done in two steps).

`fuse` takes the array module and its ndimage (NumPy + SciPy or CuPy +
cupyx), so the CPU scorer here and the GPU one (runtime/gpu/combined.py) run
the same code, and the same resize as the GPU anomaly maps.
"""

from __future__ import annotations

import numpy as np

from cfnc_edge.model.combined_head import split_combined
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import resize_ndimage


def is_combined(scorer: dict[str, np.ndarray]) -> bool:
    return "fusion" in scorer


def fuse(gaussian, bank, fusion, xp=np, ndi=None, resize=None):
    """(B, h, w) Mahalanobis + (B, sh, sw) bank distances, float32 -> (B, h, w) fused, float32.
    The bank's map is resized as the anomaly maps are (postprocess.resize_ndimage),
    or by `resize`((B, sh, sw), (h, w)) where given, with xp=None: PyTorch tensors
    (runtime/frame_path.py), float32 already."""
    g_scale, k_scale = (float(v) for v in fusion)
    h, w = gaussian.shape[-2:]
    if resize is None:
        bank = bank.astype(xp.float32)
        resize = lambda b, hw: xp.stack([resize_ndimage(k, hw, xp, ndi) for k in b])  # noqa: E731
    fused = gaussian / g_scale + (resize(bank, (h, w)) if bank.shape[-2:] != (h, w) else bank) / k_scale
    return fused.astype(xp.float32) if xp is not None else fused


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

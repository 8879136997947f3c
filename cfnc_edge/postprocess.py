"""Distance map -> anomaly map in the frame of the input image, and a score."""

from __future__ import annotations

import cv2
import numpy as np

BLUR_SIGMA = 4.0


def _pixel_to_normalised(size: int) -> np.ndarray:
    # grid_sample, align_corners=False: pixel centre u -> (2u + 1) / size - 1
    return np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]])


def unwarp(amap: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Map a (S, S) map computed in the ICA-aligned frame back onto the input frame.

    ICA resampled the input at theta @ p, so input point q appears in the
    aligned frame at theta^-1 @ q (in normalised coordinates).
    """
    size = amap.shape[0]
    t = _pixel_to_normalised(size)
    a = np.vstack([theta.astype(np.float64), [0, 0, 1]])
    m = np.linalg.inv(t) @ np.linalg.inv(a) @ t
    return cv2.warpAffine(amap, m[:2], (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def is_identity(theta: np.ndarray) -> bool:
    return bool(np.allclose(theta, [[1, 0, 0], [0, 1, 0]], atol=1e-6))


def anomaly_maps(distances: np.ndarray, thetas: np.ndarray, size: int,
                 sigma: float = BLUR_SIGMA) -> np.ndarray:
    """(B, h, w) distances + (B, 2, 3) ICA transforms -> (B, size, size) maps."""
    out = np.empty((distances.shape[0], size, size), dtype=np.float32)
    for i, (dist, theta) in enumerate(zip(distances, thetas)):
        m = cv2.resize(dist.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        if not is_identity(theta):
            m = unwarp(m, theta)
        out[i] = cv2.GaussianBlur(m, (0, 0), sigma)
    return out

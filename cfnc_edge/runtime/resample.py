"""OpenCV's resizes and Gaussian blur as separable weight matrices.

cv2.resize (INTER_AREA, INTER_LINEAR) and cv2.GaussianBlur each act on rows
and columns independently, so each is out = R_h @ image @ R_w^T for one
(dst, src) matrix per axis. As matrices they run on any array library that
multiplies (NumPy on the CPU, PyTorch on the GPU, inside a CUDA graph: no
data-dependent indexing), and they compose. This is what the GPU frame path
(runtime/frame_path.py) resizes frames and blurs maps with; the conventions
are OpenCV's:

- INTER_LINEAR: source coordinate (i + 0.5) * src / dst - 0.5, neighbours
  clamped to the image (replicated border); no antialiasing when shrinking.
- INTER_AREA (shrinking): each output pixel is the mean of the source area
  it covers, partial pixels weighted by their covered fraction.
- GaussianBlur(sigma): round(8 sigma + 1) | 1 taps for float images, the
  kernel normalised to sum 1, reflect-101 borders (dcb|abcd|cba).

Matrices are float64; callers cast. cv2 works on uint8 frames in fixed
point (11-bit linear weights) and rounds, so the frames made from these
matrices differ from cv2's by at most one grey level (tests/runtime/test_resample.py).
"""

from __future__ import annotations

import numpy as np


def linear_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of cv2's INTER_LINEAR along one axis."""
    x = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    lo = np.floor(x)
    frac = x - lo
    out = np.zeros((dst, src))
    rows = np.arange(dst)
    for idx, wt in ((lo, 1.0 - frac), (lo + 1, frac)):
        np.add.at(out, (rows, np.clip(idx, 0, src - 1).astype(np.int64)), wt)
    return out


def area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of cv2's INTER_AREA along one axis, for src >= dst:
    output pixel i averages the source interval [i * s, (i + 1) * s), s = src / dst."""
    s = src / dst
    edges = np.arange(dst + 1) * s
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(src)[None, :]
    covered = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0.0, None)
    return covered / s


def resize_matrix(src: int, dst: int, area: bool) -> np.ndarray:
    return area_matrix(src, dst) if area else linear_matrix(src, dst)


def frame_matrices(frame_hw: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows (h, H), columns (w, W)) that resize an (H, W) frame to the model's (h, w)
    as images.preprocess does: INTER_AREA when both sides shrink, else INTER_LINEAR."""
    (fh, fw), (h, w) = frame_hw, size
    area = fh > h and fw > w
    return resize_matrix(fh, h, area), resize_matrix(fw, w, area)


def reflect101(index: np.ndarray, n: int) -> np.ndarray:
    """Indices folded into [0, n) by reflect-101 (the edge pixel is not repeated)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.mod(index, period)
    return np.where(i < n, i, period - i)


def gaussian_taps(sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel as GaussianBlur sizes it for a float image: round(8 sigma + 1) | 1 taps, sum 1."""
    radius = (int(np.floor(8 * sigma + 1.5)) | 1) // 2
    t = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return t / t.sum()


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) weights of cv2.GaussianBlur(sigma) along one axis, reflect-101 borders."""
    taps = gaussian_taps(sigma)
    radius = len(taps) // 2
    out = np.zeros((n, n))
    rows = np.arange(n)
    for k, t in enumerate(taps):
        np.add.at(out, (rows, reflect101(rows + k - radius, n)), t)
    return out


def apply_separable(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """rows @ image @ cols^T over the last two axes (any leading axes)."""
    return rows @ image @ cols.T

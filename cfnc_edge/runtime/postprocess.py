"""Distance map -> anomaly map in the frame of the input image, and a score."""

from __future__ import annotations

import cv2
import numpy as np

BLUR_SIGMA = 4.0


def _pixel_to_normalised(size: int) -> np.ndarray:
    # grid_sample, align_corners=False: pixel centre u -> (2u + 1) / size - 1
    return np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]])


def unwarp_matrix(theta: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) map from an input-frame pixel (x, y) to where it lies in the ICA-aligned map.

    ICA resampled the input at theta @ p, so input point q appears in the
    aligned frame at theta^-1 @ q (in normalised coordinates).
    """
    t = _pixel_to_normalised(size)
    a = np.vstack([np.asarray(theta, np.float64), [0, 0, 1]])
    return (np.linalg.inv(t) @ np.linalg.inv(a) @ t)[:2]


def unwarp(amap: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Map a (S, S) map computed in the ICA-aligned frame back onto the input frame."""
    size = amap.shape[0]
    return cv2.warpAffine(amap, unwarp_matrix(theta, size), (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def to_frame_size(amap: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A model-resolution map resized to a frame of the given (h, w, ...) shape."""
    return cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


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


def _cv_to_ndimage(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An OpenCV (x, y) affine map as scipy.ndimage's (row, col) matrix and offset."""
    return np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]]), np.array([m[1, 2], m[0, 2]])


def anomaly_maps_ndimage(distances, thetas: np.ndarray, size: int, sigma: float = BLUR_SIGMA, xp=np, ndi=None):
    """anomaly_maps through the scipy.ndimage API, with OpenCV's conventions
    (half-pixel resize, replicated borders, reflect-101 blur of radius 4 sigma).

    With CuPy and cupyx.scipy.ndimage this is the GPU path; with NumPy and
    SciPy it runs the very same code on the CPU, which is how the GPU
    postprocessing is checked against the OpenCV one without a GPU.
    """
    if ndi is None:
        from scipy import ndimage as ndi
    b, h, _ = distances.shape
    out = xp.empty((b, size, size), dtype=xp.float32)
    s = h / size
    for i in range(b):
        m = ndi.affine_transform(distances[i], xp.asarray(np.diag([s, s])), offset=0.5 * s - 0.5,
                                 output_shape=(size, size), order=1, mode="nearest")
        if not is_identity(thetas[i]):
            mat, off = _cv_to_ndimage(unwarp_matrix(thetas[i], size))
            m = ndi.affine_transform(m, xp.asarray(mat), offset=off, order=1, mode="nearest")
        out[i] = ndi.gaussian_filter(m, sigma, mode="mirror", truncate=4.0)
    return out

"""Distance map -> anomaly map in the frame of the input image, and a score."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from cfnc_edge.images import as_hw

BLUR_SIGMA = 4.0


def _pixel_to_normalised(h: int, w: int) -> np.ndarray:
    # grid_sample, align_corners=False: pixel centre u -> (2u + 1) / w - 1 (v likewise with h)
    return np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])


def unwarp_matrix(theta: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """(2, 3) map from an input-frame pixel (x, y) to where it lies in the ICA-aligned map
    of a model input of `size` (S or (h, w)).

    ICA resampled the input at theta @ p, so input point q appears in the
    aligned frame at theta^-1 @ q (in normalised coordinates). Each axis is
    converted with its own length, which undoes the aspect correction ICA
    applied to its rotation (model/alignment.py): the result is a rotation in pixels,
    plus the shift of the template search (model/template_alignment.py).
    """
    t = _pixel_to_normalised(*as_hw(size))
    a = np.vstack([np.asarray(theta, np.float64), [0, 0, 1]])
    return (np.linalg.inv(t) @ np.linalg.inv(a) @ t)[:2]


def unwarp(amap: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Map an (h, w) map computed in the ICA-aligned frame back onto the input frame."""
    h, w = amap.shape[:2]
    return cv2.warpAffine(amap, unwarp_matrix(theta, (h, w)), (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def to_frame_size(amap: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A model-resolution map resized to a frame of the given (h, w, ...) shape."""
    return cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def is_identity(theta: np.ndarray) -> bool:
    return bool(np.allclose(theta, [[1, 0, 0], [0, 1, 0]], atol=1e-6))


def anomaly_maps(distances: np.ndarray, thetas: np.ndarray, size: int | Sequence[int],
                 sigma: float = BLUR_SIGMA) -> np.ndarray:
    """(B, h', w') distances + (B, 2, 3) ICA transforms -> (B, h, w) maps at the model input size (S or (h, w))."""
    h, w = as_hw(size)
    out = np.empty((distances.shape[0], h, w), dtype=np.float32)
    for i, (dist, theta) in enumerate(zip(distances, thetas)):
        m = cv2.resize(dist.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        if not is_identity(theta):
            m = unwarp(m, theta)
        out[i] = cv2.GaussianBlur(m, (0, 0), sigma)
    return out


def _cv_to_ndimage(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An OpenCV (x, y) affine map as scipy.ndimage's (row, col) matrix and offset."""
    return np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]]), np.array([m[1, 2], m[0, 2]])


def resize_ndimage(image, size: Sequence[int], xp=np, ndi=None):
    """One (dh, dw) map to (h, w) through scipy.ndimage's API with OpenCV's
    INTER_LINEAR conventions (half-pixel centres, replicated borders); CuPy's
    cupyx.scipy.ndimage runs the same call on the GPU."""
    if ndi is None:
        from scipy import ndimage as ndi
    (h, w), (dh, dw) = size, image.shape
    sy, sx = dh / h, dw / w
    return ndi.affine_transform(image, xp.asarray(np.diag([sy, sx])), offset=(0.5 * sy - 0.5, 0.5 * sx - 0.5),
                                output_shape=(h, w), order=1, mode="nearest")


def anomaly_maps_ndimage(distances, thetas: np.ndarray, size: int | Sequence[int], sigma: float = BLUR_SIGMA, xp=np, ndi=None):
    """anomaly_maps through the scipy.ndimage API, with OpenCV's conventions
    (half-pixel resize, replicated borders, reflect-101 blur of radius 4 sigma).

    With CuPy and cupyx.scipy.ndimage this is the GPU path; with NumPy and
    SciPy it runs the very same code on the CPU, which is how the GPU
    postprocessing is checked against the OpenCV one without a GPU.
    """
    if ndi is None:
        from scipy import ndimage as ndi
    h, w = as_hw(size)
    out = xp.empty((len(distances), h, w), dtype=xp.float32)
    for i in range(len(distances)):
        m = resize_ndimage(distances[i], (h, w), xp, ndi)
        if not is_identity(thetas[i]):
            mat, off = _cv_to_ndimage(unwarp_matrix(thetas[i], (h, w)))
            m = ndi.affine_transform(m, xp.asarray(mat), offset=off, order=1, mode="nearest")
        out[i] = ndi.gaussian_filter(m, sigma, mode="mirror", truncate=4.0)
    return out

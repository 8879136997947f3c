"""CuPy wrapper of kernels/mahalanobis.cu, and anomaly maps computed on the GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.distance import check_shape
from cfnc_edge.runtime.postprocess import BLUR_SIGMA, anomaly_maps_ndimage
from cfnc_edge.scoring.factor import compress

KERNEL_SOURCE = Path(__file__).resolve().parents[2] / "kernels" / "mahalanobis.cu"
BATCH_TEMPLATES = (1, 8, 32)  # MAX_B instances; larger batches are split into chunks of 32
THREADS = 64
MAX_DIM = 256  # CFNC_MAX_D in the kernel (shared-memory size)
CTYPES = {"fp32": "float", "fp16": "__half", "int8": "signed char"}


class GpuMahalanobis:
    """d(x) = ||W (x - mu)|| per position with W packed, stored in fp32, fp16
    or int8 with per-row scales (scoring/factor.py), arithmetic in fp32.

    `storage` converts an fp32 factor on load ("fp16" by default, as this
    kernel has always run fp32 bundles); a factor already in fp16 or int8
    (a bundle's --factor-precision) runs as it is.
    """

    def __init__(self, mean: np.ndarray, packed_factor: np.ndarray, storage: str = "fp16",
                 scale: np.ndarray | None = None):
        self.positions, self.dim = mean.shape
        if self.dim > MAX_DIM:  # checked before CuPy is needed
            raise CfncError(f"the CUDA distance kernel supports d <= {MAX_DIM} and this bundle has d = {self.dim}: "
                            f"use a CPU backend (--backend onnxruntime) or retrain with --dim {MAX_DIM} or less")
        import cupy as cp

        if packed_factor.dtype in (np.float32, np.float64):
            f = compress(packed_factor, storage)
            packed_factor, scale = f.values, f.scale
        self.storage = f"{packed_factor.dtype}".replace("float", "fp")  # float32 -> fp32, float16 -> fp16, int8
        if self.storage == "int8" and scale is None:
            raise ValueError("an int8 factor needs its per-row scales")
        self.mean = cp.asarray(mean, dtype=cp.float32)
        self.factor = cp.asarray(packed_factor)
        # a null pointer for the kernel's `scale` when there is none
        self.scale = np.uint64(0) if scale is None else cp.asarray(scale, dtype=cp.float32)
        self.names = {b: f"mahalanobis_packed<{CTYPES[self.storage]}, {b}>" for b in BATCH_TEMPLATES}
        module = cp.RawModule(code=KERNEL_SOURCE.read_text(), options=("-std=c++17", f"-DCFNC_THREADS={THREADS}"),
                              name_expressions=list(self.names.values()))
        self.kernels = {b: module.get_function(n) for b, n in self.names.items()}

    def __call__(self, features, out=None):
        """features (B, d, h, w), host or device -> distances (B, h, w) on the device;
        written into `out` (B, h, w) float32 when given (nothing is allocated then,
        as inside a graph capture)."""
        import cupy as cp

        feats = cp.ascontiguousarray(cp.asarray(features, dtype=cp.float32))
        b, d, h, w = feats.shape
        check_shape((d, h, w), self.dim, self.positions)
        out = cp.empty((b, h * w), dtype=cp.float32) if out is None else out.reshape(b, h * w)
        top = BATCH_TEMPLATES[-1]
        for b0 in range(0, b, top):
            nb = min(top, b - b0)
            tmpl = next(t for t in BATCH_TEMPLATES if t >= nb)
            self.kernels[tmpl]((self.positions,), (THREADS,),
                               (feats[b0:b0 + nb], self.mean, self.factor, self.scale, out[b0:b0 + nb],
                                np.int32(nb), np.int32(d), np.int32(self.positions)))
        return out.reshape(b, h, w)


def gpu_anomaly_maps(distances, thetas, size: tuple[int, int], sigma: float = BLUR_SIGMA):
    """postprocess.anomaly_maps on the GPU (same conventions as the OpenCV path)."""
    import cupy as cp
    from cupyx.scipy import ndimage

    thetas = cp.asnumpy(thetas) if isinstance(thetas, cp.ndarray) else np.asarray(thetas)
    return anomaly_maps_ndimage(cp.asarray(distances, dtype=cp.float32), thetas, size, sigma, cp, ndimage)

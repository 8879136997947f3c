"""CuPy wrapper of kernels/mahalanobis.cu, and anomaly maps computed on the GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfnc_edge.runtime.postprocess import BLUR_SIGMA, anomaly_maps_ndimage

KERNEL_SOURCE = Path(__file__).resolve().parents[2] / "kernels" / "mahalanobis.cu"
BATCH_TEMPLATES = (1, 8, 32)  # MAX_B instances; larger batches are split into chunks of 32
THREADS = 64
MAX_DIM = 256  # CFNC_MAX_D in the kernel (shared-memory size)


class GpuMahalanobis:
    """d(x) = ||W (x - mu)|| per position with W packed, fp16 or fp32 storage."""

    def __init__(self, mean: np.ndarray, packed_factor: np.ndarray, storage: str = "fp16"):
        import cupy as cp

        self.positions, self.dim = mean.shape
        if self.dim > MAX_DIM:
            raise ValueError(f"the CUDA kernel supports d <= {MAX_DIM}, the bundle has d = {self.dim}")
        self.mean = cp.asarray(mean, dtype=cp.float32)
        self.factor = cp.asarray(packed_factor, dtype=cp.float16 if storage == "fp16" else cp.float32)
        ctype = "__half" if storage == "fp16" else "float"
        self.names = {b: f"mahalanobis_packed<{ctype}, {b}>" for b in BATCH_TEMPLATES}
        module = cp.RawModule(code=KERNEL_SOURCE.read_text(), options=("-std=c++17", f"-DCFNC_THREADS={THREADS}"),
                              name_expressions=list(self.names.values()))
        self.kernels = {b: module.get_function(n) for b, n in self.names.items()}

    def __call__(self, features):
        """features (B, d, h, w), host or device -> distances (B, h, w) on the device."""
        import cupy as cp

        feats = cp.ascontiguousarray(cp.asarray(features, dtype=cp.float32))
        b, d, h, w = feats.shape
        if d != self.dim or h * w != self.positions:
            raise ValueError(f"features are {d}x{h}x{w}, the Gaussian expects {self.dim} channels "
                             f"at {self.positions} positions")
        out = cp.empty((b, h * w), dtype=cp.float32)
        top = BATCH_TEMPLATES[-1]
        for b0 in range(0, b, top):
            nb = min(top, b - b0)
            tmpl = next(t for t in BATCH_TEMPLATES if t >= nb)
            self.kernels[tmpl]((self.positions,), (THREADS,),
                               (feats[b0:b0 + nb], self.mean, self.factor, out[b0:b0 + nb],
                                np.int32(nb), np.int32(d), np.int32(self.positions)))
        return out.reshape(b, h, w)


def gpu_anomaly_maps(distances, thetas, size: int, sigma: float = BLUR_SIGMA):
    """postprocess.anomaly_maps on the GPU (same conventions as the OpenCV path)."""
    import cupy as cp
    from cupyx.scipy import ndimage

    thetas = cp.asnumpy(thetas) if isinstance(thetas, cp.ndarray) else np.asarray(thetas)
    return anomaly_maps_ndimage(cp.asarray(distances, dtype=cp.float32), thetas, size, sigma, cp, ndimage)

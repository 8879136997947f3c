"""The whole frame on one device, in PyTorch: BGR uint8 frames in, scores and maps out.

    frames (B, H, W, 3) BGR uint8 -> resize (area when shrinking, as
    images.preprocess) and RGB -> the model -> distance (Mahalanobis, bank
    search, or both fused) -> upsample, un-rotate by ICA's theta, blur -> max

Every step is a tensor operation on the frames' device with shapes fixed by
(batch, frame size): resizes and the blur are separable weight matrices
(runtime/resample.py), the un-rotation is grid sampling at theta^-1
(model/alignment.warp), the bank search is the exported graph's
(scoring/memory_bank.torch_nearest_distances). So the same code captures as
one CUDA graph on the GPU (runtime/gpu/frame_graph.py) and runs on the CPU,
where it is checked against the OpenCV/NumPy Inspector pipeline
(tests/runtime/test_frame_path.py). The Mahalanobis step is handed in: the
CUDA kernel on the GPU, the CPU kernel on the CPU.

Weight matrices (and the combined head's split indices) are made on first
use of a size and kept; a graph capture runs a warm-up call first, so none
is made (no host-to-device copy) inside a capture: `frozen()` turns a late
one into an error instead.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch

from cfnc_edge.model.alignment import warp
from cfnc_edge.model.combined_head import pooled_index
from cfnc_edge.runtime.combined import fuse, is_combined
from cfnc_edge.runtime.postprocess import BLUR_SIGMA
from cfnc_edge.runtime.resample import blur_matrix, frame_matrices, linear_matrix
from cfnc_edge.scoring.memory_bank import torch_nearest_distances

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Distance = Callable[[torch.Tensor], torch.Tensor]
BANK_BATCH = 8  # images per bank product: bounds its (images, positions, rows) temporary


def inverse_theta(theta: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) affine maps -> their inverses, in closed form (no solver call,
    which could synchronise the device inside a capture). The maps are computed
    in ICA's aligned frame; sampling them at theta^-1 puts them back on the
    input frame, which is postprocess.unwarp in grid_sample's coordinates."""
    a, b, c, d = theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1]
    det = a * d - b * c
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], 1) / det[:, None, None]
    return torch.cat([inv, -inv @ theta[:, :, 2:]], 2)


class FramePath:
    """frames (B, H, W, 3) BGR uint8 on `device` -> (scores (B,), maps (B, h, w)) float32.

    `forward` is the model (uint8 RGB (B, 3, h, w) -> features, theta);
    `gaussian` the Mahalanobis step (contiguous fp32 features -> (B, h', w')),
    needed for a Gaussian or combined scorer; a bank is searched here in
    `bank_dtype` (fp16 on the GPU, where tensor cores rank the rows; the
    distance to the row found is fp32 either way).
    """

    def __init__(self, forward: Forward, scorer: dict[str, np.ndarray], size: tuple[int, int],
                 device: torch.device, gaussian: Distance | None = None, bank_dtype: torch.dtype = torch.float32,
                 sigma: float = BLUR_SIGMA):
        self.forward, self.size, self.device, self.sigma = forward, tuple(size), device, sigma
        self.combined = is_combined(scorer)
        self.gaussian = gaussian if "mean" in scorer else None
        self.bank = None
        if "bank" in scorer:
            bank = torch.as_tensor(np.asarray(scorer["bank"], np.float32), device=device)
            self.bank = (bank.T.contiguous().to(bank_dtype), (bank * bank).sum(1),
                         torch.as_tensor(np.asarray(scorer["center"], np.float32), device=device))
        if self.combined:
            self.dim = int(scorer["mean"].shape[1])
            self.pooled_shape = tuple(int(v) for v in scorer["pooled_shape"])
            self.fusion = np.asarray(scorer["fusion"], np.float64)
        self._constants: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._frozen = False

    @contextlib.contextmanager
    def frozen(self):
        """Within it, a size without matrices is an error (around a graph capture)."""
        self._frozen = True
        try:
            yield self
        finally:
            self._frozen = False

    def _cached(self, key: tuple, make: Callable[[], tuple], dtype: torch.dtype = torch.float32):
        """Constant tensors for a size, made once on the device (a copy from the host,
        so never inside a capture)."""
        if key not in self._constants:
            if self._frozen:
                raise RuntimeError(f"frame path: no {key[0]} tensors for {key[1:]} made before the capture")
            self._constants[key] = tuple(torch.as_tensor(m, dtype=dtype, device=self.device) for m in make())
        return self._constants[key]

    def _linear(self, src: tuple[int, int], dst: tuple[int, int]):
        return self._cached(("linear", src, dst),
                            lambda: (linear_matrix(src[0], dst[0]), linear_matrix(src[1], dst[1])))

    @staticmethod
    def _separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """rows @ x @ cols^T over the last two axes, the cheaper product first."""
        (h, big_h), (w, big_w) = rows.shape, cols.shape
        if h * big_w * (big_h + w) <= w * big_h * (big_w + h):
            return (rows @ x) @ cols.T
        return rows @ (x @ cols.T)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) BGR uint8 -> (B, 3, h, w) RGB uint8, rounded as OpenCV rounds."""
        hw = tuple(frames.shape[1:3])
        rows, cols = self._cached(("frame", hw, self.size), lambda: frame_matrices(hw, self.size))
        rgb = frames.flip(-1).permute(0, 3, 1, 2).float()
        return torch.floor(self._separable(rgb, rows, cols) + 0.5).clamp_(0, 255).to(torch.uint8)

    def resize(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, h', w') -> (B, h, w), cv2's INTER_LINEAR (postprocess.to_frame_size, resize_ndimage)."""
        return self._separable(maps, *self._linear(tuple(maps.shape[-2:]), tuple(size)))

    def _bank_distances(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch_nearest_distances(feats[i:i + BANK_BATCH], *self.bank)
                          for i in range(0, len(feats), BANK_BATCH)])

    def distance(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C, h', w') features -> (B, h', w') distances, as the bundle's scorer."""
        if self.combined:
            # split_combined's rows and columns as device indices: a Python list
            # index would be a host-to-device copy on every call
            hw = tuple(feats.shape[-2:])
            rows, cols = self._cached(("pooled", hw), lambda: pooled_index(hw, self.pooled_shape), torch.int64)
            pooled = feats[:, self.dim:].index_select(2, rows).index_select(3, cols)
            return fuse(self.gaussian(feats[:, :self.dim].contiguous()), self._bank_distances(pooled), self.fusion,
                        xp=None, resize=self.resize)
        if self.gaussian is not None:
            return self.gaussian(feats.contiguous())
        return self._bank_distances(feats)

    def maps(self, distances: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """postprocess.anomaly_maps: upsample, un-rotate (identity theta included:
        no branch on data), blur with reflect-101 borders."""
        h, w = self.size
        up = self.resize(distances, self.size)
        aligned = warp(up[:, None], inverse_theta(theta.float()))[:, 0]
        blur = self._cached(("blur", self.size, self.sigma),
                          lambda: (blur_matrix(h, self.sigma), blur_matrix(w, self.sigma)))
        return self._separable(aligned, *blur)

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, theta = self.forward(self.preprocess(frames))
        maps = self.maps(self.distance(feats.float()), theta)
        return maps.amax((1, 2)), maps


class HostGaussian:
    """The Mahalanobis step of a CPU frame path: the CPU distance (runtime/distance.py) on the tensors' memory."""

    def __init__(self, scorer: dict[str, np.ndarray]):
        from cfnc_edge.runtime.distance import CpuMahalanobis

        self.kernel = CpuMahalanobis(scorer["mean"], scorer["factor"], scale=scorer.get("factor_scale"))

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.kernel(feats.numpy()))


def cpu_frame_path(model: torch.nn.Module, scorer: dict[str, np.ndarray], size: tuple[int, int]) -> FramePath:
    """The frame path on the CPU: the same code as on the GPU, checkable here."""
    return FramePath(model, scorer, size, torch.device("cpu"), HostGaussian(scorer) if "mean" in scorer else None)

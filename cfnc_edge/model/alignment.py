"""Coarse alignment: spatial transformers at image level (ICA) and feature level (FCA).

Both follow the appendix of the paper: a localisation net of two 3x3 convs,
two max-pools and two fully connected layers. ICA regresses one rotation
angle (on top of a template search once one is fitted); FCA regresses a full
2x3 affine matrix. The last layer starts at zero so both start as the
identity (or as the search's pose) and training moves them only when it pays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfnc_edge.errors import CfncError
from cfnc_edge.model.template_alignment import TemplateSearch, rotation_theta


def base_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h*w, 3) homogeneous output coordinates in grid_sample's convention
    (align_corners=False)."""
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(h * w, 3)


def warp(x: torch.Tensor, theta: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x at theta @ [u, v, 1] for every output position.

    The grid is built with a matmul instead of F.affine_grid so that the
    exported ONNX graph needs only MatMul + GridSample (opset 16), which every
    TensorRT version we target parses. `base` (from base_grid) is passed as a
    precomputed buffer by the modules below, so that the exported graph holds
    it as a constant instead of rebuilding it from the input shape at run
    time (about 300 fewer nodes per graph).
    """
    b, _, h, w = x.shape
    if base is None or base.shape[0] != h * w:
        base = base_grid(h, w, x.device, x.dtype)
    grid = (base @ theta.transpose(1, 2)).reshape(b, h, w, 2)
    # border padding: zero padding would reward rotations that create matching
    # black corners in every image instead of aligning the content.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class _Localisation(nn.Module):
    def __init__(self, in_channels: int, n_out: int, size: int):
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(inplace=True),
        )
        flat = 10 * (size // 4) ** 2
        self.fc = nn.Sequential(nn.Linear(flat, 32), nn.ReLU(inplace=True), nn.Linear(32, n_out))
        nn.init.zeros_(self.fc[2].weight)
        nn.init.zeros_(self.fc[2].bias)

    def forward(self, x):
        if x.shape[-1] != self.size or x.shape[-2] != self.size:  # any (h, w) -> a square summary
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.fc(self.features(x).flatten(1))


def ica_angle_degrees(theta: np.ndarray) -> np.ndarray:
    """(B, 2, 3) ICA transforms -> rotation angles in degrees, for any aspect ratio:
    the off-diagonal terms are -sin * h/w and sin * w/h, so their product is -sin^2."""
    theta = np.asarray(theta, np.float64)
    sin = np.sign(theta[:, 1, 0]) * np.sqrt(np.maximum(-theta[:, 0, 1] * theta[:, 1, 0], 0.0))
    return np.degrees(np.arctan2(sin, theta[:, 0, 0]))


def angle_summary(angles: np.ndarray, bins: int = 12) -> dict:
    """The distribution of ICA rotation angles (degrees) over the fitted images."""
    a = np.asarray(angles, np.float64)
    lo, hi = float(a.min()), float(a.max())
    counts, edges = np.histogram(a, bins=bins, range=(lo, hi if hi > lo else lo + 1e-3))
    return {"mean": float(a.mean()), "std": float(a.std()), "min": lo, "max": hi,
            "p5": float(np.percentile(a, 5)), "p50": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "histogram": counts.tolist(), "edges": [round(float(e), 4) for e in edges]}


class _Warper(nn.Module):
    def __init__(self, size: tuple[int, int] | None):
        super().__init__()
        base = base_grid(*size) if size else torch.empty(0, 3)
        self.register_buffer("base", base, persistent=False)


class ImageAlignment(_Warper):
    """ICA: rotate (and centre) each image to a canonical pose.

    `size` is the (h, w) of the images. grid_sample's normalised coordinates
    span [-1, 1] on both axes whatever the aspect ratio, so a rotation matrix
    applied there is a shear in pixels on a non-square image. The rotation is
    conjugated by the pixel-to-normalised scale instead: theta =
    D R D^-1 with D = diag(1/w, 1/h), i.e. [[c, -s h/w], [s w/h, c]], a true
    rotation of the pixels (runtime/postprocess.py inverts it in pixels).

    With a fitted template (`fit_template`, model/template_alignment.py) the
    pose is the template search's rotation and shift plus the localisation
    net's residual angle, read off the coarsely aligned image. Unfitted, it is
    the paper's ICA: the net's angle alone, no shift.
    """

    def __init__(self, in_channels: int = 3, loc_size: int = 32, size: tuple[int, int] | None = None):
        super().__init__(size)
        self.loc = _Localisation(in_channels, 1, loc_size)
        # w / h as a constant of the graph when the size is known (the model's case)
        self.aspect = size[1] / size[0] if size else None
        self.search = TemplateSearch(size) if size else None

    def fit_template(self, batches) -> dict:
        """Fit the search's template from good images: an iterable of (B, C, h, w) batches as ICA sees them."""
        if self.search is None:
            raise CfncError("ImageAlignment needs its image size to fit a template; build it with size=(h, w)")
        return self.search.fit(batches)

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        r = self.aspect or x.shape[-1] / x.shape[-2]
        if self.search is None or not self.search.fitted:
            return rotation_theta(self.loc(x)[:, 0], r)
        with torch.no_grad():  # argmax: nothing to learn through the search
            angle, shift = self.search.locate(x)
        small = F.interpolate(x, size=(self.loc.size,) * 2, mode="bilinear", align_corners=False)
        # rotations about the part's centre compose by adding angles
        residual = self.loc(warp(small, rotation_theta(angle, r, shift)))[:, 0]
        return rotation_theta(angle + residual, r, shift)

    def forward(self, x):
        t = self.theta(x)
        return warp(x, t, self.base), t


class FeatureAlignment(_Warper):
    """FCA: a free affine transform of a feature map, identity at start."""

    def __init__(self, channels: int, loc_size: int = 16, size: tuple[int, int] | None = None):
        super().__init__(size)
        self.loc = _Localisation(channels, 6, loc_size)
        self.register_buffer("identity", torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), persistent=False)

    def forward(self, x):
        t = self.loc(x).view(-1, 2, 3) + self.identity
        return warp(x, t, self.base)

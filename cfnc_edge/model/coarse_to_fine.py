"""The coarse-to-fine feature extractor: ICA -> (stage -> FCA) x 3 -> feature head.

Input: uint8 RGB (B, 3, h, w) (`ModelConfig.image_size`: S for a square
or [h, w]), normalisation inside, so the exported graph
takes raw frames. Output: the feature map the scorer reads, plus the ICA
transform (needed to map the anomaly map back onto the unaligned frame).

Three feature heads (`ModelConfig.head`):

- "projection": all three taps, a fixed random projection to d channels at
  stride 4: what the per-position Gaussian is fitted on (the paper's recipe);
- "pooled": the stride-8 and stride-16 taps, 3x3 average pooling, the deeper
  one upsampled to stride 8 and concatenated (PatchCore's patch features):
  what the memory bank stores. Nearest-neighbour search compares patches with
  patches from any position, so it gains from the larger receptive field of
  the pooled mid-level taps and loses nothing by having 4x fewer positions;
- "combined": both from one pass over the backbone, in one tensor: the
  projection's d channels, then the pooled channels repeated onto the
  stride-4 grid (nearest neighbour, so model/combined_head.py
  recovers the pooled map exactly): what the combined scorer (Gaussian +
  bank) reads. One output keeps every backend, the export and its parity
  checks unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw
from cfnc_edge.model.alignment import FeatureAlignment, ImageAlignment
from cfnc_edge.model.backbones import build_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADS = ("projection", "pooled", "combined")


@dataclass
class ModelConfig:
    backbone: str = "efficientnet-lite0"
    image_size: int | list[int] = 224  # S (square) or [h, w]; each side a multiple of MAX_STRIDE for exact taps
    feature_dim: int = 100  # d after the fixed projection
    ica: bool = True
    fca: bool = True
    projection_seed: int = 0
    channels: list[int] = field(default_factory=list)  # filled from the backbone
    head: str = "projection"  # "projection" (d channels, stride 4) | "pooled" (taps 2-3, stride 8) | "combined"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def feature_stride(self) -> int:
        return 8 if self.head == "pooled" else 4

    @property
    def input_size(self) -> tuple[int, int]:
        """(h, w) of the model input."""
        return as_hw(self.image_size)

    @property
    def feature_hw(self) -> tuple[int, int]:
        """(h', w') of the feature map the scorer reads."""
        h, w = self.input_size
        return h // self.feature_stride, w // self.feature_stride

    @property
    def positions(self) -> int:
        """Feature positions per image (h' * w'): the per-position Gaussian's count."""
        h, w = self.feature_hw
        return h * w

    @property
    def feature_channels(self) -> int:
        """Channels of the feature map (needs `channels`, filled when the model is built)."""
        pooled = sum(self.channels[1:])
        return {"pooled": pooled, "combined": self.feature_dim + pooled}.get(self.head, self.feature_dim)


def semi_orthogonal(d: int, c: int, seed: int) -> torch.Tensor:
    """Fixed random (d, c) matrix with orthonormal rows (or columns if d > c)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(max(c, d), min(c, d), generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # unique sign: the same matrix on every machine
    return (q.T if d <= c else q).to(torch.float32).contiguous()


class CoarseToFine(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained: bool = True, weights=None):
        super().__init__()
        if cfg.head not in HEADS:
            raise CfncError(f"unknown feature head {cfg.head!r}; choose from {', '.join(HEADS)}")
        h, w = cfg.input_size
        stages, chans = build_backbone(cfg.backbone, (h, w), pretrained, weights)
        cfg.channels = list(chans)
        self.cfg = cfg
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():  # tap sizes, for the FCA sampling grids
            x, sizes = torch.zeros(1, 3, h, w), []
            for st in self.stages.eval():
                x = st(x)
                sizes.append(tuple(x.shape[-2:]))
        self.tap_shapes: list[tuple[int, int]] = sizes  # (h, w) of each tap; the pooled head is at tap 2's
        self.ica = ImageAlignment(size=(h, w)) if cfg.ica else None
        self.fca = nn.ModuleList(FeatureAlignment(c, size=s) for c, s in zip(chans, sizes)) if cfg.fca else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)
        # The projection is linear and so is upsampling, so each pyramid level
        # is projected at its own resolution before being upsampled and summed:
        # the same result as project(concat(upsample(levels))) at a fraction of
        # the cost, as a 1x1 convolution per level in the exported graph.
        proj = semi_orthogonal(cfg.feature_dim, sum(chans), cfg.projection_seed)
        self.register_buffer("projection", proj)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    @torch.no_grad()
    def fit_template(self, images_u8: np.ndarray, batch_size: int = 32) -> dict:
        """Fit ICA's template search on good uint8 images (N, 3, h, w), once, before
        training (model/template_alignment.py); returns the fit's summary."""
        device = self.mean.device
        batches = (self.normalise(torch.from_numpy(np.ascontiguousarray(images_u8[s:s + batch_size])).to(device))
                   for s in range(0, len(images_u8), batch_size))
        return self.ica.fit_template(batches)

    def align_image(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ica is None:
            eye = torch.eye(2, 3, dtype=x.dtype, device=x.device)
            return x, eye.expand(x.shape[0], 2, 3)
        return self.ica(x)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised, aligned image -> three aligned feature maps."""
        taps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.fca is not None:
                x = self.fca[i](x)
            taps.append(x)
        return taps

    def project(self, taps: list[torch.Tensor]) -> torch.Tensor:
        size = taps[0].shape[-2:]
        out = None
        start = 0
        for t in taps:
            c = t.shape[1]
            w = self.projection[:, start:start + c]
            start += c
            y = F.conv2d(t, w[:, :, None, None])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return out

    @staticmethod
    def pool(taps: list[torch.Tensor]) -> torch.Tensor:
        """PatchCore's patch features: taps 2 and 3, 3x3 average pooling, at tap 2's resolution."""
        size = taps[1].shape[-2:]
        out = []
        for t in taps[1:]:
            y = F.avg_pool2d(t, 3, stride=1, padding=1)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out.append(y)
        return torch.cat(out, 1)

    @torch.inference_mode()
    def run(self, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Host uint8 images -> host (features float32, thetas), computed on the
        device the weights are on (fitting on a GPU when training ran there)."""
        device = self.mean.device
        feats, thetas = self(torch.from_numpy(np.ascontiguousarray(images_u8)).to(device, non_blocking=True))
        return feats.float().cpu().numpy(), thetas.float().cpu().numpy()

    def forward(self, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 RGB (B,3,h,w) -> (features (B,C,h/s,w/s), ICA theta (B,2,3)); C, s set by the head."""
        x, theta = self.align_image(self.normalise(images_u8))
        taps = self.pyramid(x)
        if self.cfg.head == "combined":
            proj = self.project(taps)
            return torch.cat([proj, F.interpolate(self.pool(taps), size=proj.shape[-2:], mode="nearest")], 1), theta
        return (self.pool(taps) if self.cfg.head == "pooled" else self.project(taps)), theta

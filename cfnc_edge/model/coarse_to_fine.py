"""The coarse-to-fine feature extractor: ICA -> (stage -> FCA) x 3 -> projection.

Input: uint8 RGB (B, 3, S, S), normalisation inside, so the exported graph
takes raw frames. Output: the d-channel feature map at stride 4 on which the
per-position Gaussian is fitted, plus the ICA transform (needed to map the
anomaly map back onto the unaligned frame).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cfnc_edge.model.alignment import FeatureAlignment, ImageAlignment
from cfnc_edge.model.backbones import build_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelConfig:
    backbone: str = "efficientnet-lite0"
    image_size: int = 224
    feature_dim: int = 100  # d after the fixed projection
    ica: bool = True
    fca: bool = True
    projection_seed: int = 0
    channels: list[int] = field(default_factory=list)  # filled from the backbone

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def feature_size(self) -> int:
        return self.image_size // 4


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
        stages, chans = build_backbone(cfg.backbone, cfg.image_size, pretrained, weights)
        cfg.channels = list(chans)
        self.cfg = cfg
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():  # tap sizes, for the FCA sampling grids
            x, sizes = torch.zeros(1, 3, cfg.image_size, cfg.image_size), []
            for st in self.stages.eval():
                x = st(x)
                sizes.append(x.shape[-1])
        self.ica = ImageAlignment(size=cfg.image_size) if cfg.ica else None
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

    def forward(self, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 RGB (B,3,S,S) -> (features (B,d,S/4,S/4), ICA theta (B,2,3))."""
        x, theta = self.align_image(self.normalise(images_u8))
        return self.project(self.pyramid(x)), theta

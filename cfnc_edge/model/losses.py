"""Training objectives of the paper.

- ICA loss (Eq. 2): pixel-wise L2 distance between each aligned image and a
  randomly paired aligned image of the same batch.
- Fine alignment (Eq. 3-4, Algorithm 1): dense SimSiam. A 3-layer 1x1-conv
  encoder f and a 2-layer 1x1-conv predictor g; negative cosine similarity at
  every position between an image and its partner in a shuffled batch,
  symmetric, with stop-gradient on the target branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ICA_POOL = 4


def ica_loss(aligned: torch.Tensor, perm: torch.Tensor, pool: int = ICA_POOL) -> torch.Tensor:
    """Eq. 2, compared at 1/pool resolution.

    At full resolution the loss has a degenerate minimum: any rotation that
    is not a multiple of 90 degrees blurs the image through bilinear
    resampling, and blurred images are closer in L2, so ICA learned to rotate
    every image by the same few degrees (seen on magnetic-tile: 6.9 +- 0.1
    degrees for all images) instead of aligning them. Coarse alignment is
    about coarse structure, which pooling keeps and interpolation blur does
    not change.
    """
    if pool > 1:
        aligned = F.avg_pool2d(aligned, pool)
    diff = aligned - aligned[perm]
    # eps keeps the gradient of the norm finite where two pixels already agree
    return torch.sqrt(diff.pow(2).sum(1) + 1e-8).mean()


def _bn_relu(c_in: int, c_out: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class DenseSimSiam(nn.Module):
    """Encoder f and predictor g for one pyramid level (training only)."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        h = hidden or min(256, 2 * channels)
        self.f = nn.Sequential(*_bn_relu(channels, h), *_bn_relu(h, h), *_bn_relu(h, h, relu=False))
        b = max(8, h // 4)
        self.g = nn.Sequential(*_bn_relu(h, b), nn.Conv2d(b, h, 1))

    def forward(self, x: torch.Tensor, perm: torch.Tensor, return_z: bool = False):
        """The symmetric loss (and, with return_z, the encoder outputs, for the collapse check)."""
        z = self.f(x)
        p = self.g(z)
        z_partner, p_partner = z[perm], p[perm]
        loss = 0.5 * negative_cosine(p, z_partner) + 0.5 * negative_cosine(p_partner, z)
        return (loss, z) if return_z else loss


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over batch and positions of -cos(p, stopgrad(z)) along channels."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def partner_permutation(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random pairing with no image paired with itself (a derangement by
    rotation of a shuffled order), so every pair carries a signal."""
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(1)
    return perm

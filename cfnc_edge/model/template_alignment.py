"""ICA's coarse pose: an exhaustive search against a canonical template.

Why: the paper trains ICA by a gradient from the identity against one random
partner image. On MVTec screws (parts in every orientation) that never turns
a part: a pooled L2 loss has no gradient towards a rotation of 180 degrees
(measured: 0.27-0.39 degree angles, flat loss, issue 19). A search over every
rotation and position needs no training and cannot get stuck: the learned
localisation net then only refines what the search found.

The template is fitted once from good images by congealing
(`fit_template`): start from the medoid of a subset, align every image to
the template, replace the template by the mean of the aligned images, repeat.
It is stored as rotated copies (a bank of convolution filters), so the search
is a constant of the weights and of the exported graph: blur + resize, one
convolution per statistic, argmax, gather (ONNX opset 17).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

N_ANGLES = 36  # 10-degree steps; parabolic interpolation refines between them
SEARCH_SIDE = 44  # short side of the grey image searched (about 5 px of a 224 input per pixel)
# Turn an image only when its best angle beats angle 0 by this many times the
# best angle's misfit (1 - correlation): ties (a rotationally symmetric part, a
# part already upright, stripes at 0 and 180 degrees) stay at identity.
GAIN_OVER_MISFIT = 2.0
# Fit nothing when fewer good images than this are confidently turned: the set
# is a texture or already aligned (magnetic-tile falls below it, screws are far above:
# the "confident share" of benchmarks/results/ica-alignment.md).
MIN_CONFIDENT_SHARE = 0.5
MODE_SHARE = 1 / 3  # a pose shared by this share of the good images is the usual one (uniform: 1/12)
CONGEAL_ITERATIONS = 3
MEDOID_SUBSET = 24
# floor of a window's variance, as a share of the image's: flat background
# windows would otherwise have noise-amplified correlations
VAR_FLOOR = 0.05


def rotation_theta(angle: torch.Tensor, aspect: float, shift: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) angles (radians), w/h, (B, 2) shifts (normalised) -> (B, 2, 3) grid_sample transforms.

    A rotation of the pixels conjugated by the pixel-to-normalised scale
    (see ImageAlignment): [[c, -s h/w], [s w/h, c]], then the shift."""
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s / aspect], -1), torch.stack([s * aspect, c], -1)], 1)
    if shift is None:
        return F.pad(rot, (0, 1))
    return torch.cat([rot, shift[:, :, None]], 2)


def _disc(side: int) -> torch.Tensor:
    """(side, side) 0/1 disc: what a template keeps, so that rotating it loses no content."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5 - side / 2) / (side / 2)
    return ((c[None, :] ** 2 + c[:, None] ** 2) <= 1.0).float()


class TemplateSearch(nn.Module):
    """The best rotation and position of each image against the fitted template.

    `size`: (h, w) of the images. Unfitted (no filters), it finds nothing and
    ImageAlignment stays what it was before templates: identity + residual."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        h, w = size
        self.blur = max(1, round(min(h, w) / SEARCH_SIDE)) | 1  # odd: the blur stays centred
        self.grid = (max(1, round(h * SEARCH_SIDE / min(h, w))), max(1, round(w * SEARCH_SIDE / min(h, w))))
        self.side = min(self.grid)
        self.pad = self.side // 4  # positions searched: +-1/4 of the short side each way
        self.register_buffer("filters", torch.zeros(0, 1, self.side, self.side))
        self.register_buffer("disc", _disc(self.side)[None, None], persistent=False)
        self.register_buffer("angles", torch.arange(N_ANGLES) * (2 * math.pi / N_ANGLES), persistent=False)

    @property
    def fitted(self) -> bool:
        return self.filters.shape[0] > 0

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        # the filters' count is what was fitted (0: unfitted); bundles written
        # before templates have none and load as unfitted
        key = prefix + "filters"
        self.filters = state[key].new_empty(state[key].shape) if key in state else self.filters[:0]
        if key not in state:
            state[key] = self.filters
        super()._load_from_state_dict(state, prefix, *args, **kwargs)

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, 1, gh, gw) blurred grey image, zero mean and unit std per image."""
        g = x.mean(1, keepdim=True)
        if self.blur > 1:  # box blur before the resize, so small bright details do not alias
            g = F.avg_pool2d(g, self.blur, stride=1, padding=self.blur // 2, count_include_pad=False)
        g = F.interpolate(g, size=self.grid, mode="bilinear", align_corners=False)
        g = g - g.mean((2, 3), keepdim=True)
        return g / (g.pow(2).mean((2, 3), keepdim=True).sqrt() + 1e-6)

    def scores(self, g: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        """Normalised cross-correlation of grey images (B,1,gh,gw) with zero-mean,
        unit-norm disc filters (K,1,s,s) at every position: (B, K, ph, pw)."""
        g = F.pad(g, (self.pad,) * 4, mode="replicate")
        n = self.disc.sum()
        s1 = F.conv2d(g, self.disc)
        var = F.conv2d(g * g, self.disc) - s1 * s1 / n  # the window's sum of squared deviations
        return F.conv2d(g, filters) / torch.sqrt(torch.clamp(var, min=VAR_FLOOR * n))

    def poses(self, g: torch.Tensor, gate: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Grey images (B, 1, gh, gw) -> each one's pose: angle (B,) radians in [-pi, pi), shift (B, 2)
        normalised, the best score, and whether the best angle is confident. With `gate`, an image whose
        best angle is not confident keeps angle 0 and is only shifted (to its best position at angle 0)."""
        ncc = self.scores(g, self.filters)
        b, k, ph, pw = ncc.shape
        per_angle = ncc.flatten(2).amax(2)  # (B, K): each angle at its best position
        best = per_angle.argmax(1)
        s1 = per_angle.gather(1, best[:, None])[:, 0]
        s0, s2 = (per_angle.gather(1, ((best + d) % k)[:, None])[:, 0] for d in (-1, 1))
        angle = self.angles[best] + _vertex(s0, s1, s2) * (2 * math.pi / k)
        # noise-aware: the best angle must explain the image better than angle 0
        # by GAIN_OVER_MISFIT times what it leaves unexplained (1 - score)
        confident = s1 - per_angle[:, 0] > GAIN_OVER_MISFIT * (1 - s1)
        if gate:
            best = torch.where(confident, best, torch.zeros_like(best))
            angle = torch.where(confident, angle, torch.zeros_like(angle))
        # the position at the chosen angle, refined to sub-pixels the same way
        flat = ncc.gather(1, best[:, None, None, None].expand(b, 1, ph, pw)).flatten(1)  # (B, ph * pw)
        at = flat.argmax(1)
        iy, ix = at // pw, at % pw
        dx = _vertex(*(flat.gather(1, (iy * pw + (ix + d).clamp(0, pw - 1))[:, None])[:, 0] for d in (-1, 0, 1)))
        dy = _vertex(*(flat.gather(1, ((iy + d).clamp(0, ph - 1) * pw + ix)[:, None])[:, 0] for d in (-1, 0, 1)))
        gh, gw = g.shape[-2:]
        # output index i puts the filter's centre at grey coordinate i - pad + side / 2
        cx = (ix.to(g.dtype) + dx - self.pad + self.side / 2) * (2 / gw) - 1
        cy = (iy.to(g.dtype) + dy - self.pad + self.side / 2) * (2 / gh) - 1
        return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi, torch.stack([cx, cy], 1), s1, confident

    def locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> angle (B,) radians and shift (B, 2) normalised of each image's part."""
        return self.poses(self.grey(x))[:2]

    @torch.no_grad()
    def fit(self, batches, iterations: int = CONGEAL_ITERATIONS) -> dict:
        """Congeal a template from good images: `batches` is an iterable of (B, C, h, w) float batches
        (the images as ICA sees them). Returns the mean best correlation of each round and the share of
        images whose angle is confident; under MIN_CONFIDENT_SHARE the search is left unfitted."""
        grey = torch.cat([self.grey(x) for x in batches])
        template = _medoid(self, grey[torch.linspace(0, len(grey) - 1, min(MEDOID_SUBSET, len(grey))).long()])
        history = []
        for _ in range(iterations):
            self.filters = self._rotated(template)
            # every image joins the mean at its best pose, confident or not: the
            # gate is for inference, where a tie must not turn a part
            angle, shift, score, _ = self._all_poses(grey)
            history.append(round(float(score.mean()), 4))
            aligned = _warp_grey(grey, rotation_theta(angle, grey.shape[-1] / grey.shape[-2], shift))
            template = self._crop(aligned.mean(0, keepdim=True))
        self.filters = self._rotated(template)
        self.filters = self._rotated(_canonical(template, self._all_poses(grey)[0]))
        share = float(self._all_poses(grey)[3].float().mean())
        if share < MIN_CONFIDENT_SHARE:  # a texture, or parts that are already aligned: leave them as they are
            self.filters = self.filters[:0]
        return {"congealing_correlation": history, "confident_share": round(share, 3), "fitted": self.fitted}

    def _all_poses(self, grey: torch.Tensor):
        """poses() of many grey images, ungated, in batches that keep the correlation volume small."""
        return tuple(torch.cat(p) for p in zip(*(self.poses(g, gate=False) for g in grey.split(64))))

    def _crop(self, g: torch.Tensor) -> torch.Tensor:
        """The central side x side square of a grey image."""
        gh, gw = g.shape[-2:]
        y0, x0 = (gh - self.side) // 2, (gw - self.side) // 2
        return g[..., y0:y0 + self.side, x0:x0 + self.side]

    def _rotated(self, template: torch.Tensor) -> torch.Tensor:
        """(1,1,s,s) template -> (K,1,s,s) filters: rotated by each angle, inside the disc, zero mean, unit norm."""
        t = template.expand(N_ANGLES, 1, -1, -1)
        t = _warp_grey(t, rotation_theta(-self.angles, 1.0))
        inside = self.disc.bool().expand_as(t)
        mean = (t * self.disc).sum((2, 3), keepdim=True) / self.disc.sum()
        t = torch.where(inside, t - mean, torch.zeros_like(t))
        return t / t.flatten(1).norm(dim=1).clamp(min=1e-6)[:, None, None, None]


def _medoid(search: TemplateSearch, grey: torch.Tensor) -> torch.Tensor:
    """The image of the subset that the others match best at their best pose: a real part to start from (the
    plain mean of parts in every orientation is a rotationally blurred blob)."""
    means = []
    for g in grey:
        search.filters = search._rotated(search._crop(g[None]))
        means.append(search._all_poses(grey)[2].mean())
    return search._crop(grey[int(torch.stack(means).argmax())][None])


def _canonical(template: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """The pose the search turns parts to. Where most good images share one pose (a mode holding more
    than MODE_SHARE of them), that pose: then angle 0 is how parts usually lie, and the gate keeps them
    there. Where poses spread (screws lying every way), the template's part upright."""
    bins = torch.round(angles / (2 * math.pi / N_ANGLES)).long() % N_ANGLES
    counts = torch.bincount(bins, minlength=N_ANGLES).float()
    near = counts + counts.roll(1) + counts.roll(-1)  # +-1 bin: +-15 degrees
    mode = int(near.argmax())
    if near[mode] < MODE_SHARE * len(angles):
        return _upright(template)
    offset = torch.remainder(angles - mode * (2 * math.pi / N_ANGLES) + math.pi, 2 * math.pi) - math.pi
    inside = offset.abs() <= 1.5 * (2 * math.pi / N_ANGLES)
    mean = mode * (2 * math.pi / N_ANGLES) + offset[inside].mean()
    # the template turned the way a part at the mode lies, as _rotated turns the filters
    return _warp_grey(template, rotation_theta(-mean[None], 1.0))


def _upright(t: torch.Tensor) -> torch.Tensor:
    """The template turned so that its part's long axis is vertical, thin end down, and centred: any
    consistent pose would do for the model; this one keeps parts in the frame and is easy to check by eye.
    Mass is the deviation from the background, read as the median of the disc's rim."""
    side = t.shape[-1]
    c = (torch.arange(side, dtype=t.dtype) + 0.5) * (2 / side) - 1  # normalised coordinates
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    r2 = xx ** 2 + yy ** 2
    rim = t[0, 0][(r2 <= 1) & (r2 > 0.8)].median()
    m = (t[0, 0] - rim).abs() * (r2 <= 1)
    m = m / m.sum()
    mx, my = (m * xx).sum(), (m * yy).sum()
    dx, dy = xx - mx, yy - my
    phi = 0.5 * torch.atan2(2 * (m * dx * dy).sum(), (m * (dx * dx - dy * dy)).sum())  # long axis u from x
    # the output's point (0, v) samples mean + v u at this angle: the axis becomes vertical
    a = phi - math.pi / 2
    # the third moment along u points to the long thin tail of the mass (a screw's tip): put it down (+v)
    if (m * (dx * torch.cos(phi) + dy * torch.sin(phi)) ** 3).sum() < 0:
        a = a + math.pi
    theta = rotation_theta(a[None], 1.0, torch.stack([mx, my])[None])
    return _warp_grey(t, theta)


def _warp_grey(g: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(g.shape), align_corners=False)
    return F.grid_sample(g, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _vertex(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through (-1, a), (0, b), (1, c)."""
    den = a - 2 * b + c
    off = 0.5 * (a - c) / torch.where(den.abs() > 1e-9, den, torch.ones_like(den))
    return torch.where(den < -1e-9, off.clamp(-0.5, 0.5), torch.zeros_like(off))

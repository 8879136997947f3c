"""Synthetic defects pasted on good images, each with the exact mask of what it changed.

Label-free model selection scores candidate models on held-out good images
made defective here. No single kind of defect may decide the choice (a model
that sees colour blobs well can miss hairline cracks), so there are several
families, as in the field's self-supervised methods (CutPaste, NSA, DRAEM,
MemSeg), each standing for defects real lines see:

- cutpaste: a patch of another good image (or of this one from elsewhere,
  turned or mirrored), slightly rotated and colour-shifted, pasted with a
  soft edge: foreign or misplaced material, a texture whose structure breaks.
- scratch: 1-3 px bright or dark strokes along a gentle curve: the long thin
  defects that pooled features lose first.
- crack: a thin dark random walk that branches: fractures.
- stain: an irregular soft-edged blob, darker, brighter or tinted: dirt,
  oil, discolouration; smooth and low in contrast.
- missing: part of the material gone: replaced by the background colour
  (an object's broken edge) or by a dark hole, deepest in its middle (a pit,
  a blowhole on a texture).
- perlin: a fractal-noise shaped region whose inside becomes a foreign
  texture (a strongly transformed copy of the image, or a noise texture)
  blended at 30-100% (DRAEM's anomalies).

Areas are log-uniform over 0.05-5% of the image (thin strokes stay 1-3 px
wide, so their area is mostly their length), centred on the part: the
foreground, estimated from the image border unless given. A defect's mask is
exactly where its blend weight is positive, so no pixel outside the mask
changes, and the mean change inside the mask is at least MIN_CHANGE grey
levels (a defect nobody could see would only add noise to the selection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from cfnc_edge.errors import DataError

FAMILIES = ("cutpaste", "scratch", "crack", "stain", "missing", "perlin")
AREA_RANGE = (0.0005, 0.05)  # defect area as a share of the image, drawn log-uniformly
MIN_CHANGE = 10.0  # mean |change| inside a mask, grey levels averaged over channels
_MIN_PIXELS = 6  # a floor for tiny inputs, where 0.05% of the image is under a pixel
_ALPHA_FLOOR = 0.05  # weaker blend weights are cut to zero so that a soft edge ends inside its mask
_TRIES = 6
_SUPER = 4  # strokes are drawn this many times finer
_FG_RANGE = (0.03, 0.90)  # foreground shares outside this mean "a texture": the whole image is the part


def add_defect(image: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None,
               family: str | None = None, foreground: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """image (3, h, w) uint8 RGB -> (defective copy (3, h, w) uint8, mask (h, w) bool, family).

    family None: drawn at random. donor: another good image of the same shape
    for cut-paste (without one, the patch comes from elsewhere in the image,
    turned or mirrored). foreground: bool (h, w) where the part is (defects
    are placed on it); None: estimated by :func:`estimate_foreground`.
    """
    _check_image(image, "image")
    h, w = image.shape[1:]
    if donor is not None and donor.shape != image.shape:
        raise DataError(f"donor image is {donor.shape}, the image {image.shape}: give a donor of the same shape")
    if family is None:
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    elif family not in FAMILIES:
        raise DataError(f"unknown defect family {family!r}: choose from {', '.join(FAMILIES)}")
    if foreground is None:
        foreground = estimate_foreground(image[None])[0]
    elif foreground.shape != (h, w) or not foreground.any():
        raise DataError(f"foreground must be a non-empty bool mask of shape {(h, w)}, got {foreground.shape}")
    ctx = _Context.of(image, donor, foreground.astype(bool), rng)
    last = None
    for _ in range(_TRIES):
        area = max(_MIN_PIXELS, h * w * math.exp(rng.uniform(*np.log(AREA_RANGE))))
        sl, alpha, target = _MAKERS[family](ctx, area)
        alpha = alpha * ctx.fg[sl]
        alpha[alpha < _ALPHA_FLOOR] = 0
        if not alpha.any():
            continue
        last = sl, alpha
        patch = ctx.patch(sl)
        out, change = _blend(patch, alpha, target)
        if change < MIN_CHANGE:  # too faint on this surface: strengthen the same defect
            target = patch + min(4.0, 1.3 * MIN_CHANGE / max(change, 1.0)) * (target - patch)
            out, change = _blend(patch, alpha, target)
        if change >= MIN_CHANGE:
            return (*_paste(image, sl, alpha, out), family)
    if last is None:  # a foreground too small for this family's strokes: a dot at one of its pixels
        y, x = ctx.pick()
        last = (slice(y, y + 1), slice(x, x + 1)), np.ones((1, 1), np.float32)
    # Still too faint after strengthening (a saturated surface): move every pixel half the range away.
    sl, alpha = last
    patch = ctx.patch(sl)
    away = np.where(patch < 128, patch + 128, patch - 128)
    out, _ = _blend(patch, np.where(alpha > 0, np.maximum(alpha, 0.5), 0), away)
    return (*_paste(image, sl, alpha, out), family)


def synthetic_defects(images: np.ndarray, seed: int = 0, families=FAMILIES
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """images (N, 3, h, w) uint8 -> (defective (N, 3, h, w) uint8, masks (N, h, w) bool, family of each).

    One defect per image; families are cycled in a seeded order (each cycle a
    fresh permutation) so every family is represented; cut-paste donors are
    other images of the set. Each image draws from its own child generator,
    so image i's defect does not depend on how much the others drew.
    """
    if images.ndim != 4:
        raise DataError(f"images must be a batch (N, 3, h, w), got shape {images.shape}")
    out, masks, names = defects_on_images(list(images), seed, families)
    return np.stack(out), np.stack(masks), names


def defects_on_images(images: list[np.ndarray], seed: int = 0, families=FAMILIES
                      ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """synthetic_defects on images of any sizes ((3, h, w) uint8 each): a donor of
    another size is resized to the image's. Selection draws defects on the frames
    as captured, not after resizing to the model input: a defect drawn after
    upsampling has edges sharper than any real defect seen through that upsampling."""
    if not images:
        raise DataError("no images to put defects on")
    for im in images:
        _check_image(im, "images")
    families = tuple(families)
    unknown = sorted(set(families) - set(FAMILIES))
    if not families or unknown:
        raise DataError(f"unknown defect families {unknown}: choose from {', '.join(FAMILIES)}")
    n = len(images)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(families)) for _ in range(-(-n // len(families)))])[:n]
    out, masks, names = [], [], []
    for i, child in enumerate(rng.spawn(n)):
        donor = images[(i + 1 + int(child.integers(n - 1))) % n] if n > 1 else None
        if donor is not None and donor.shape != images[i].shape:
            h, w = images[i].shape[1:]
            donor = cv2.resize(_hwc(donor), (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
        bad, mask, name = add_defect(images[i], child, donor, families[order[i]],
                                     estimate_foreground(images[i][None])[0])
        out.append(bad)
        masks.append(mask)
        names.append(name)
    return out, masks, names


def estimate_foreground(images: np.ndarray) -> np.ndarray:
    """(N, 3, h, w) uint8 -> (N, h, w) bool: where each image's part is.

    Pixels whose (lightly smoothed) colour differs from the median colour of
    the image border by more than the border's own spread allows, cleaned by
    an opening and a closing. A result under 3% or over 90% of the image means
    no part stands out from a background (a texture, or a part filling the
    frame): the whole image is foreground.
    """
    if images.ndim != 4:
        raise DataError(f"images must be a batch (N, 3, h, w), got shape {images.shape}")
    _check_image(images[0], "images")
    n, _, h, w = images.shape
    side = min(h, w)
    k_open = _odd(side / 60)
    k_close = _odd(side / 25)
    out = np.empty((n, h, w), bool)
    for i, image in enumerate(images):
        img = cv2.GaussianBlur(_hwc(image), (0, 0), max(1.0, side / 150))
        border = _border(img)
        centre = np.median(border, axis=0)
        b, g, r = cv2.split(cv2.absdiff(img, (*np.rint(centre), 0)))
        dist = cv2.max(cv2.max(b, g), r)
        bd = np.abs(border - centre).max(axis=1)
        mad = np.median(np.abs(bd - np.median(bd)))
        # The border's distances to its own median are the background's spread; a part lies well beyond
        # it. The floor keeps sensor noise on a flat background from counting, and Otsu's split between
        # background and part keeps a part's soft shadow out.
        otsu, _ = cv2.threshold(dist, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        thr = max(12.0, np.median(bd) + 6 * 1.4826 * mad, np.quantile(bd, 0.98), otsu)
        fg = (dist > thr).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((k_open, k_open), np.uint8))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((k_close, k_close), np.uint8))
        share = fg.mean()
        out[i] = fg > 0 if _FG_RANGE[0] <= share <= _FG_RANGE[1] else True
    return out


# --- shared pieces ---------------------------------------------------------------------------------------------


@dataclass
class _Context:
    img: np.ndarray  # (h, w, 3) uint8
    donor: np.ndarray | None  # same, or None
    fg: np.ndarray  # (h, w) bool
    grey: bool  # all channels equal: the defect must stay grey (a grey camera sees no tint)
    rng: np.random.Generator
    fg_index: np.ndarray  # flat indices of the foreground

    @classmethod
    def of(cls, image, donor, fg, rng):
        grey = bool((image[0] == image[1]).all() and (image[1] == image[2]).all())
        return cls(_hwc(image), None if donor is None else _hwc(donor), fg, grey, rng, np.flatnonzero(fg))

    def patch(self, sl) -> np.ndarray:
        """The image inside a window, as float32 (h, w, 3)."""
        return self.img[sl].astype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.fg.shape

    @property
    def whole(self) -> bool:
        return self.fg_index.size == self.fg.size

    def pick(self, among: np.ndarray | None = None) -> tuple[int, int]:
        """A random pixel (y, x) of the foreground (or of `among`, flat indices)."""
        index = self.fg_index if among is None else among
        return divmod(int(index[self.rng.integers(index.size)]), self.shape[1])

    def colour(self, size: int = 3) -> np.ndarray:
        """Per-channel factors or offsets in [-1, 1]; one shared value on grey images."""
        v = self.rng.uniform(-1, 1, size)
        return np.full(size, v[0]) if self.grey else v


def _hwc(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(1, 2, 0))


def _check_image(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[0] != 3 or image.dtype != np.uint8:
        raise DataError(f"{name}: expected uint8 RGB channels first (3, h, w), got {image.dtype} {image.shape}")


def _odd(x: float) -> int:
    return max(1, int(x) // 2 * 2 + 1)


def _border(img: np.ndarray) -> np.ndarray:
    """The pixels of a frame 3% of the short side wide (at least one pixel): (n, 3)."""
    h, w = img.shape[:2]
    b = max(1, round(0.03 * min(h, w)))
    return np.concatenate([img[:b].reshape(-1, 3), img[-b:].reshape(-1, 3),
                           img[b:-b, :b].reshape(-1, 3), img[b:-b, -b:].reshape(-1, 3)])


def _window(cy: int, cx: int, half_y: float, half_x: float, shape) -> tuple[slice, slice]:
    h, w = shape
    hy, hx = int(math.ceil(half_y)), int(math.ceil(half_x))
    return slice(max(0, cy - hy), min(h, cy + hy + 1)), slice(max(0, cx - hx), min(w, cx + hx + 1))


def _blend(patch: np.ndarray, alpha: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Blend `target` into `patch` with weight `alpha` (> 0 exactly on the mask)
    -> (uint8, mean |change| on the mask)."""
    out = np.clip(np.rint(patch + alpha[..., None] * (target - patch)), 0, 255)
    inside = alpha > 0
    out = np.where(inside[..., None], out, patch).astype(np.uint8)
    return out, float(np.abs(out[inside] - patch[inside]).mean())


def _paste(image: np.ndarray, sl, alpha: np.ndarray, patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = image.copy()
    out[:, sl[0], sl[1]] = patch.transpose(2, 0, 1)
    mask = np.zeros(image.shape[1:], bool)
    mask[sl] = alpha > 0
    return out, mask


def _noise(rng: np.random.Generator, shape, cells: float, octaves: int = 3) -> np.ndarray:
    """Fractal value noise (smooth random grids of `cells`, 2x, 4x... cells across, halving in weight), std 1."""
    h, w = shape
    total = np.zeros((h, w), np.float32)
    for o in range(octaves):
        c = cells * 2 ** o
        grid = rng.standard_normal((max(2, round(c * h / max(h, w)) + 1), max(2, round(c * w / max(h, w)) + 1)))
        total += 0.5 ** o * cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return total / max(float(total.std()), 1e-6)


def _region(ctx: _Context, area: float, centre, roughness: float, spread: float, cells: float):
    """An irregular region of about `area` foreground pixels around `centre`: (window, bool (wh, ww)).

    A random ellipse's falloff plus fractal noise; the `area` highest points
    of that field on the foreground form the region (rougher noise: more
    ragged edges and, for Perlin shapes, separate islands).
    """
    r = math.sqrt(area / math.pi)
    stretch = math.exp(ctx.rng.uniform(-0.7, 0.7))
    half = spread * r * max(stretch, 1 / stretch) + 2
    sl = _window(*centre, half, half, ctx.shape)
    yy, xx = np.mgrid[sl[0], sl[1]].astype(np.float32)
    t = ctx.rng.uniform(0, math.pi)
    u = (xx - centre[1]) * math.cos(t) + (yy - centre[0]) * math.sin(t)
    v = (yy - centre[0]) * math.cos(t) - (xx - centre[1]) * math.sin(t)
    field = -((u / (r * stretch)) ** 2 + (v * stretch / r) ** 2) + roughness * _noise(ctx.rng, u.shape, cells)
    field[~ctx.fg[sl]] = -np.inf
    k = min(int(round(area)), int(ctx.fg[sl].sum()))
    flat = field.ravel()
    threshold = np.partition(flat, flat.size - k)[flat.size - k]
    return sl, (field >= threshold) & np.isfinite(field)


def _soft(region: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma) if sigma > 0 else region.astype(np.float32)


def _stroke_layer(ctx: _Context, strokes: list[tuple[np.ndarray, int]]):
    """Anti-aliased poly-lines [(points (n, 2) as x, y floats, width)] -> (window, alpha)."""
    pts = np.concatenate([p for p, _ in strokes])
    pad = max(wd for _, wd in strokes) + 2
    h, w = ctx.shape
    x0, y0 = max(0, int(pts[:, 0].min()) - pad), max(0, int(pts[:, 1].min()) - pad)
    x1, y1 = min(w, int(pts[:, 0].max()) + pad + 1), min(h, int(pts[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), np.float32)
    # Drawn 4x larger and averaged down: OpenCV's thick lines come out 1-2 px wider than asked, so a
    # "1-3 px" stroke is only that wide when drawn finer (thickness 4w - 1 integrates to w + 0.35 px).
    canvas = np.zeros((_SUPER * (y1 - y0), _SUPER * (x1 - x0)), np.uint8)
    for p, width in strokes:
        q = np.rint((p - (x0, y0)) * _SUPER * 16).astype(np.int32)  # 4 fractional bits: sub-pixel lines
        cv2.polylines(canvas, [q], False, 255, _SUPER * width - 1, cv2.LINE_AA, shift=4)
    alpha = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return (slice(y0, y1), slice(x0, x1)), alpha.astype(np.float32) / 255


# --- the families: each returns (window, blend weight there, target colours there) ---------------------------


def _cutpaste(ctx: _Context, area: float):
    rng, (h, w) = ctx.rng, ctx.shape
    aspect = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
    pw = min(0.8 * w, max(2.0, math.sqrt(area * aspect)))
    ph = min(0.8 * h, max(2.0, area / pw))
    cy, cx = ctx.pick()
    angle = rng.uniform(-30, 30)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    turn = np.array([[c, -s], [s, c]])
    extent = max(pw, ph)
    if ctx.donor is None:  # the image itself: from elsewhere (no overlap), turned or mirrored
        src = ctx.img
        turn = turn @ [np.eye(2), [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[-1, 0], [0, 1]]][rng.integers(4)]
        dist = rng.uniform(extent, extent + 0.3 * min(h, w))
    else:  # another good part: shifted, since the same place of an aligned part would be no defect
        src = ctx.donor
        dist = rng.uniform(0.5 * extent, extent + 0.3 * min(h, w))
    phi = rng.uniform(0, 2 * math.pi)
    half = extent / 2
    sx = float(np.clip(cx + dist * math.cos(phi), min(half, w / 2), max(w - half, w / 2)))
    sy = float(np.clip(cy + dist * math.sin(phi), min(half, h / 2), max(h - half, h / 2)))
    sl = _window(cy, cx, half + 2, half + 2, ctx.shape)
    # Window pixel q -> source pixel (sx, sy) + turn (q + origin - centre).
    origin = np.array([sl[1].start - cx, sl[0].start - cy], float)
    m = np.hstack([turn, (np.array([sx, sy]) + turn @ origin)[:, None]]).astype(np.float32)
    size = (sl[1].stop - sl[1].start, sl[0].stop - sl[0].start)
    patch = cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    # CutPaste's colour jitter: a foreign patch rarely matches the exposure of its new place.
    mean = patch.reshape(-1, 3).mean(0)
    patch = (patch - mean) * rng.uniform(0.75, 1.3) + mean * (1 + 0.15 * ctx.colour()) + rng.uniform(-25, 25)
    outline = cv2.boxPoints(((cx - sl[1].start, cy - sl[0].start), (pw, ph), angle))
    shape = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(shape, [np.rint(outline * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return sl, _soft(shape > 0, rng.uniform(0.4, 1.2)), patch


def _curve(centre, phi: float, length: float, bend: float, n: int) -> np.ndarray:
    """A quadratic Bezier of about `length` through `centre` (y, x) at heading `phi`, its middle pushed
    sideways by `bend` lengths: (n, 2) x, y."""
    d = np.array([math.cos(phi), math.sin(phi)])
    c = np.array([centre[1], centre[0]], float)
    p0, p2 = c - d * length / 2, c + d * length / 2
    p1 = c + np.array([-d[1], d[0]]) * bend * length
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _scratch(ctx: _Context, area: float):
    rng, (h, w) = ctx.rng, ctx.shape
    width = int(rng.integers(1, 4))
    length = float(np.clip(area / width, 4 * width + 2, 0.9 * max(h, w)))
    # Sometimes a few side by side, as one grit drags them: translates of one gentle curve, apart by
    # more than twice their width, so they never merge into one broad stroke.
    n = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
    cy, cx = ctx.pick()
    phi, bend = rng.uniform(0, 2 * math.pi), rng.uniform(-0.25, 0.25) / n
    gap, size = rng.uniform(2 * width + 3, 3 * width + 8), length / n
    strokes = []
    for i in range(n):
        off, along = (i - (n - 1) / 2) * gap, rng.uniform(-0.15, 0.15) * size
        c = (cy + off * math.cos(phi) + along * math.sin(phi), cx - off * math.sin(phi) + along * math.cos(phi))
        strokes.append((_curve(c, phi, size, bend, max(8, int(size / 3))), width))
    sl, alpha = _stroke_layer(ctx, strokes)
    patch = ctx.patch(sl)
    sign = 1 if rng.random() < 0.5 else -1  # a lit edge shines, a groove in shadow is dark
    target = patch + sign * rng.uniform(45, 110) * (1 + 0.1 * ctx.colour())
    return sl, alpha, target


def _walk(rng, start, heading: float, length: float, step: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A crack's path: a slow drift of heading plus jagged kinks -> (points (n, 2) x, y, headings (n,))."""
    n = max(2, int(length / step))
    drift = cv2.resize(rng.normal(0, 1, (1, max(2, n // 15))).astype(np.float32), (n, 1),
                       interpolation=cv2.INTER_LINEAR)[0]
    phi = heading + 0.6 * drift + rng.normal(0, 0.35, n)
    pts = np.asarray(start, float) + np.cumsum(step * np.stack([np.cos(phi), np.sin(phi)], 1), 0)
    return np.vstack([start, pts]), phi


def _crack(ctx: _Context, area: float):
    rng, (h, w) = ctx.rng, ctx.shape
    width = 1 if rng.random() < 0.7 else 2
    budget = float(np.clip(area / width, 6, 1.5 * max(h, w)))
    y, x = ctx.pick()
    heading = rng.uniform(0, 2 * math.pi)
    # The trunk grows both ways from its start; branches split off at an angle, thinner and shorter.
    queue = [((x, y), heading, budget * 0.4, width, 0), ((x, y), heading + math.pi, budget * 0.4, width, 0)]
    strokes = []
    while queue:
        start, phi, length, wd, depth = queue.pop()
        pts, phis = _walk(rng, start, phi, length)
        strokes.append((pts, wd))
        if depth < 2:
            for i in np.flatnonzero(rng.random(len(phis)) < 0.02)[:3]:
                side = rng.choice((-1, 1)) * rng.uniform(0.4, 1.0)
                queue.append((pts[i + 1], phis[i] + side, length * rng.uniform(0.15, 0.4), 1, depth + 1))
    sl, alpha = _stroke_layer(ctx, strokes)
    patch = ctx.patch(sl)
    return sl, alpha, patch * rng.uniform(0.1, 0.45) - rng.uniform(0, 15)


def _stain(ctx: _Context, area: float):
    rng = ctx.rng
    sl, region = _region(ctx, area, ctx.pick(), roughness=0.8, spread=2.0, cells=rng.uniform(1.5, 3))
    r = math.sqrt(area / math.pi)
    alpha = _soft(region, max(0.6, rng.uniform(0.1, 0.3) * r))
    patch = ctx.patch(sl)
    mode = rng.integers(3)
    if mode == 0:  # darker: oil, dirt
        target = patch * rng.uniform(0.4, 0.75)
    elif mode == 1:  # brighter: residue, a dried drop
        target = patch + rng.uniform(30, 70)
    else:  # discoloured: a tint (on grey images a plain brightness change)
        target = patch * (1 + 0.45 * ctx.colour())
    mottle = 1 + 0.1 * _noise(rng, region.shape, 4, 2)[..., None]  # stains are not flat
    return sl, alpha, patch + (target - patch) * mottle


def _missing(ctx: _Context, area: float):
    rng = ctx.rng
    edge = None
    if not ctx.whole and rng.random() < 0.6:  # a broken edge or corner of the part
        eroded = cv2.erode(ctx.fg.astype(np.uint8), np.ones((3, 3), np.uint8))
        edge = np.flatnonzero(ctx.fg & (eroded == 0))
    centre = ctx.pick(edge if edge is not None and edge.size else None)
    sl, region = _region(ctx, area, centre, roughness=1.2, spread=2.0, cells=rng.uniform(2, 4))
    alpha = _soft(region, 0.6)  # material breaks off sharply
    patch = ctx.patch(sl)
    background, grain = _background_near(ctx, centre, math.sqrt(area))
    distinct = np.abs(patch[region].mean(0) - background).max() > 2 * MIN_CHANGE
    if not ctx.whole and distinct:  # through to the background behind the part
        target = background + rng.normal(0, grain, patch.shape[:2])[..., None]
    else:  # a hole: dark, darkest where it is deepest
        depth = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
        depth = depth / max(float(depth.max()), 1.0)
        level = min(float(patch[region].mean()) * rng.uniform(0.15, 0.4), 45.0)
        target = np.repeat((level * (1 - 0.6 * depth))[..., None], 3, axis=2)
    return sl, alpha, target


def _background_near(ctx: _Context, centre, reach: float) -> tuple[np.ndarray, float]:
    """The background's colour and grain (std, at most 6) near `centre`; the border's if none is near.

    Near the part, not at the border: lighting falls off across a frame and a
    part's shadow darkens its surroundings, so a hole filled with the border's
    colour would glow.
    """
    sl = _window(*centre, 3 * reach + 8, 3 * reach + 8, ctx.shape)
    near = ctx.img[sl][~ctx.fg[sl]]
    pixels = near if len(near) >= 20 else _border(ctx.img)
    return np.median(pixels, axis=0), min(6.0, float(pixels.std(axis=0).mean()))


def _perlin(ctx: _Context, area: float):
    rng = ctx.rng
    sl, region = _region(ctx, area, ctx.pick(), roughness=2.5, spread=2.5, cells=rng.uniform(2, 4))
    alpha = _soft(region, 0.5) * rng.uniform(0.3, 1.0)
    hh, ww = region.shape
    if rng.random() < 0.5:  # DRAEM's foreign texture: a strongly transformed copy of a good image
        src = ctx.img if ctx.donor is None else ctx.donor
        h, w = ctx.shape
        m = cv2.getRotationMatrix2D((rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(0, 360),
                                    math.exp(rng.uniform(math.log(0.5), math.log(2.5))))
        m[:, 2] -= (sl[1].start, sl[0].start)
        texture = cv2.warpAffine(src, m, (ww, hh), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        for op in rng.choice(4, size=2, replace=False):
            if op == 0:  # invert
                texture = 255 - texture
            elif op == 1:  # gamma
                texture = 255 * (texture / 255) ** math.exp(rng.uniform(-1, 1))
            elif op == 2:  # contrast, brightness
                texture = (texture - 128) * rng.uniform(1.5, 3) + 128 + rng.uniform(-60, 60)
            else:  # posterise / solarise
                texture = np.where(texture > rng.uniform(60, 200), 255 - texture, texture)
            texture = np.clip(texture, 0, 255)
    else:  # a noise texture in two random colours
        lo, hi = rng.uniform(0, 255, (2, 3))
        if ctx.grey:
            lo, hi = np.full(3, lo[0]), np.full(3, hi[0])
        t = 1 / (1 + np.exp(-1.5 * _noise(rng, (hh, ww), rng.uniform(3, 10))))
        texture = lo + t[..., None] * (hi - lo)
    return sl, alpha, texture


_MAKERS = {"cutpaste": _cutpaste, "scratch": _scratch, "crack": _crack, "stain": _stain, "missing": _missing,
           "perlin": _perlin}

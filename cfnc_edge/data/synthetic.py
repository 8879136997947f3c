"""Synthetic inspection data: the embedded default for the demo and the tests.

Each image shows one machined part (brushed, textured plate with bore holes
and an asymmetric notch) at a random rotation and position on a conveyor-like
background, lit slightly differently every time. Pose variation is what the
coarse alignment (ICA/FCA) exists for; the defects are small, as on a real
line. Defects are drawn after the part is placed, straight into the final
image, so each mask is exactly the set of pixels a defect touched.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cfnc_edge.errors import DataError

DEFECTS = ("scratch", "dent", "stain", "missing")


def _part_template(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A part in its own frame: (BGR float image, bool mask), size x size."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(xx * 0.9 + 0.15 * np.sin(yy * 0.07))
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    shade = 150 + 18 * stripes + 9 * grain + 0.08 * (xx - w / 2)
    img = np.repeat(shade[:, :, None], 3, axis=2) * np.array([1.0, 0.97, 0.93], np.float32)

    mask = np.zeros((h, w), np.uint8)
    pw, ph = int(w * 0.62), int(h * 0.42)
    x0, y0 = (w - pw) // 2, (h - ph) // 2
    r = int(h * 0.06)
    cv2.rectangle(mask, (x0 + r, y0), (x0 + pw - r, y0 + ph), 255, -1)
    cv2.rectangle(mask, (x0, y0 + r), (x0 + pw, y0 + ph - r), 255, -1)
    for cx, cy in ((x0 + r, y0 + r), (x0 + pw - r, y0 + r), (x0 + r, y0 + ph - r), (x0 + pw - r, y0 + ph - r)):
        cv2.circle(mask, (cx, cy), r, 255, -1)
    # Bore holes and a notch on one side make the pose unambiguous.
    for fx in (0.25, 0.75):
        cv2.circle(mask, (int(x0 + fx * pw), h // 2), int(h * 0.045), 0, -1)
    cv2.rectangle(mask, (x0 + pw - int(0.12 * pw), y0 + int(0.4 * ph)), (x0 + pw, y0 + int(0.6 * ph)), 0, -1)
    return img, mask > 0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 3)
    bg = 55 + 6 * noise
    return np.repeat(bg[:, :, None], 3, axis=2) * np.array([1.0, 1.02, 1.05], np.float32)


def render_good(rng: np.random.Generator, size: int = 256, max_rotation: float = 25.0,
                max_shift: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """A defect-free image and its part mask (bool)."""
    part, pmask = _part_template(rng, size)
    angle = rng.uniform(-max_rotation, max_rotation)
    shift = rng.uniform(-max_shift, max_shift, 2) * size
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    m[:, 2] += shift
    part_w = cv2.warpAffine(part, m, (size, size), flags=cv2.INTER_LINEAR)
    mask_w = cv2.warpAffine(pmask.astype(np.uint8), m, (size, size), flags=cv2.INTER_NEAREST) > 0
    img = _background(rng, size)
    img[mask_w] = part_w[mask_w]
    img *= rng.uniform(0.92, 1.08)  # lighting
    img += rng.normal(0, 1.5, img.shape)
    return img.astype(np.float32), mask_w


def _point_on_part(rng: np.random.Generator, part: np.ndarray, margin: int) -> tuple[int, int]:
    eroded = cv2.erode(part.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    ys, xs = np.nonzero(eroded if eroded.any() else part)
    i = rng.integers(len(xs))
    return int(xs[i]), int(ys[i])


def add_defect(rng: np.random.Generator, img: np.ndarray, part: np.ndarray, kind: str,
               background: np.ndarray) -> np.ndarray:
    """Draw one defect into img (in place); return its exact bool mask."""
    size = img.shape[0]
    mask = np.zeros(img.shape[:2], np.uint8)
    s = size / 256
    if kind == "scratch":
        x, y = _point_on_part(rng, part, int(10 * s))
        pts = [(x, y)]
        ang = rng.uniform(0, np.pi)
        for _ in range(3):
            ang += rng.uniform(-0.4, 0.4)
            step = rng.uniform(6, 12) * s
            x, y = x + step * np.cos(ang), y + step * np.sin(ang)
            pts.append((x, y))
        cv2.polylines(mask, [np.array(pts, np.int32)], False, 255, thickness=max(1, int(round(1.5 * s))))
        m = (mask > 0) & part
        img[m] = rng.choice([35.0, 235.0]) + rng.normal(0, 4, (m.sum(), 3))
    elif kind == "dent":
        x, y = _point_on_part(rng, part, int(12 * s))
        axes = (int(rng.uniform(5, 9) * s), int(rng.uniform(4, 7) * s))
        cv2.ellipse(mask, (x, y), axes, rng.uniform(0, 180), 0, 360, 255, -1)
        m = (mask > 0) & part
        yy, xx = np.nonzero(m)
        d = rng.uniform(0, 2 * np.pi)
        grad = ((xx - x) * np.cos(d) + (yy - y) * np.sin(d)) / max(axes)
        img[yy, xx] += (45 * grad)[:, None] - 20
    elif kind == "stain":
        x, y = _point_on_part(rng, part, int(12 * s))
        axes = (int(rng.uniform(6, 11) * s), int(rng.uniform(5, 9) * s))
        cv2.ellipse(mask, (x, y), axes, rng.uniform(0, 180), 0, 360, 255, -1)
        m = (mask > 0) & part
        tint = np.array(rng.choice([[40.0, 90.0, 140.0], [120.0, 60.0, 30.0]]), np.float32)
        img[m] = 0.55 * img[m] + 0.45 * tint
    elif kind == "missing":
        edge = part & ~(cv2.erode(part.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        ys, xs = np.nonzero(edge)
        i = rng.integers(len(xs))
        r = int(rng.uniform(7, 11) * s)
        cv2.circle(mask, (int(xs[i]), int(ys[i])), r, 255, -1)
        m = (mask > 0) & part
        img[m] = background[m]
    else:
        raise ValueError(f"unknown defect kind {kind!r}; choose from {DEFECTS}")
    return m


def render_defective(rng: np.random.Generator, kind: str, size: int = 256,
                     max_rotation: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    img, part = render_good(rng, size, max_rotation)
    background = _background(rng, size) * float(np.mean(img[~part]) / 55.0)
    mask = add_defect(rng, img, part, kind, background)
    return img, mask


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8)):
        raise OSError(f"could not write {path}")


# a side of the synthetic images: the generator holds int64 coordinate grids of size^2 (100000 asked for 149 GB)
MAX_SIZE = 4096


def generate_dataset(root: Path | str, n_train: int = 200, n_test_good: int = 20,
                     n_per_defect: int = 10, size: int = 256, seed: int = 0,
                     max_rotation: float = 25.0, progress: bool = True) -> Path:
    """Write a synthetic dataset in the MVTec AD layout and return its root."""
    root = Path(root)
    # each was a traceback: --size 0 in OpenCV, --size 100000 a MemoryError, a file as root
    if not 16 <= size <= MAX_SIZE:
        raise DataError(f"--size must be from 16 to {MAX_SIZE} pixels, got {size}")
    if min(n_train, n_test_good, n_per_defect) < 0:
        raise DataError("--n-train, --n-test-good and --n-per-defect must be at least 0")
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file; give a folder to write the dataset into")
    rng = np.random.default_rng(seed)
    jobs = [("train", "good", i) for i in range(n_train)]
    jobs += [("test", "good", i) for i in range(n_test_good)]
    jobs += [("test", k, i) for k in DEFECTS for i in range(n_per_defect)]
    for split, kind, i in tqdm(jobs, desc="synthetic data", disable=not progress, unit="img"):
        name = f"{i:03d}"
        if kind == "good":
            img, _ = render_good(rng, size, max_rotation)
        else:
            img, mask = render_defective(rng, kind, size, max_rotation)
            _save(root / "ground_truth" / kind / f"{name}_mask.png", mask.astype(np.uint8) * 255)
        _save(root / split / kind / f"{name}.png", img)
    return root

"""Plot panels drawn with OpenCV (already a dependency), so the report's
pictures need no plotting library: a framed white panel with a title, data
mapped to pixels, and text."""

from __future__ import annotations

import cv2
import numpy as np

W, H, M = 360, 260, 40  # panel width, height, margin
COLOURS = [(200, 80, 0), (0, 140, 255), (40, 160, 40)]  # BGR: blue, orange, green
BLACK, GREY, RED = (0, 0, 0), (170, 170, 170), (0, 0, 220)


def panel(title: str) -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    cv2.rectangle(img, (M, 20), (W - 10, H - M), BLACK, 1)
    text(img, title, (M, 14), 0.42)
    return img


def to_px(v, lo: float, hi: float, a: float, b: float):
    """v in [lo, hi] to pixels in [a, b] (a degenerate range maps to a)."""
    return a + (np.asarray(v, float) - lo) / (hi - lo if hi > lo else 1.0) * (b - a)


def text(img: np.ndarray, s: str, at: tuple[int, int], size: float = 0.38, colour=BLACK) -> None:
    cv2.putText(img, s, (int(at[0]), int(at[1])), cv2.FONT_HERSHEY_SIMPLEX, size, colour, 1, cv2.LINE_AA)

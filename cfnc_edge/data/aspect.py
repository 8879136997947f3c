"""The model input size that keeps the training images' shape.

`--image-size S` means "short side S, aspect ratio of the parts": squashing a
1:2.5 strip into a square throws away most of the pixels of a thin crack
along it. The rule, from the median width/height of the good images:

- within [0.8, 1.25]: a square S x S (a slight stretch costs less than the
  extra positions);
- else the long side is S * ratio, rounded to the nearest multiple of the
  model's deepest tap stride (so every tap has an integer size), at most
  MAX_LONG * S: beyond that tiling (`--tile`) keeps the resolution without
  growing the per-position Gaussian further.

`HxW` (including `SxS`) is taken as given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from cfnc_edge.images import read_image

SQUARE_RANGE = (0.8, 1.25)
MAX_LONG = 4  # the long side is at most this many short sides
SAMPLE = 64  # images whose size is read (spread over the set): the median needs no more


def median_aspect(paths: list[Path]) -> float:
    """Median width / height of (a spread sample of) the images."""
    step = max(1, len(paths) // SAMPLE)
    ratios = []
    for p in paths[::step][:SAMPLE]:
        h, w = read_image(p).shape[:2]
        ratios.append(w / h)
    return float(np.median(ratios))


def keep_aspect(short: int, ratio: float, stride: int, log: Callable[[str], None] = print) -> tuple[int, int]:
    """(h, w) with short side `short` for images of width/height `ratio` (the rule above)."""
    if SQUARE_RANGE[0] <= ratio <= SQUARE_RANGE[1]:
        return short, short
    stretch = max(ratio, 1 / ratio)
    long = max(stride, int(round(short * stretch / stride)) * stride)
    cap = MAX_LONG * short
    if long > cap:
        log(f"images are {stretch:.1f}:1; the model input's long side is capped at {cap} px ({MAX_LONG}x "
            f"--image-size): train and inspect with --tile to keep their full resolution")
        long = cap
    return (short, long) if ratio > 1 else (long, short)

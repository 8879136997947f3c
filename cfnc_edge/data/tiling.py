"""Tiling: large frames cut into model-sized tiles, one stitched map per frame.

A frame is first scaled so that one tile (`Tiling.size`, frame pixels; by
default the model input size, i.e. no scaling) becomes exactly one model
input (h, w). The scaled frame is cut into a grid of h x w tiles, neighbours
sharing `overlap` of a tile. Where the frame is not a whole number of tiles,
the last tile of a row or column is shifted back to end at the border (it
overlaps its neighbour more; nothing is padded or stretched). A frame smaller
than one tile along an axis is padded there by repeating its border pixels;
one smaller than a given tile size along both axes is refused (it would be
scaled down with the tile, to a few pixels).

All tiles of all frames run as one batch; each tile's map is computed exactly
as for a frame of its own (resize, ICA unwarp, blur), then the maps are put
back at their places and averaged where tiles overlap. The map of a tiled
inspection covers the scaled frame (frame size when a tile is the model
size) and the verdict is the maximum of that map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw, parse_size, to_bgr

MAX_OVERLAP = 0.9
# tiles of one frame, all run as one batch: more would exhaust memory or run for
# hours (--tile 1 cut a 96 px frame into 9216 tiles, each scaled up to a model input)
MAX_TILES = 4096


@dataclass(frozen=True)
class Tiling:
    """How frames are tiled: tile (h, w) in frame pixels (None: the model input
    size) and the fraction of a tile neighbours share."""

    size: tuple[int, int] | None = None
    overlap: float = 0.0

    def __post_init__(self):
        if not 0 <= self.overlap <= MAX_OVERLAP:
            raise CfncError(f"--tile-overlap must be a fraction in [0, {MAX_OVERLAP}], got {self.overlap!r}")
        if self.size is not None and min(self.size) < 1:
            raise CfncError(f"--tile must be at least 1x1 pixels, got {self.size!r}")

    @classmethod
    def parse(cls, tile: Tiling | str | int | Sequence[int] | bool | None, overlap: float = 0.0) -> Tiling | None:
        """None/False: no tiling; True or "auto": tiles of the model input size;
        S or "HxW" or (h, w): tiles of that many frame pixels."""
        if tile is None or tile is False:
            return None
        if isinstance(tile, Tiling):
            return tile
        if tile is True or (isinstance(tile, str) and tile.lower() == "auto"):
            return cls(None, overlap)
        if isinstance(tile, str):
            values = parse_size(tile)
            if values is None:
                raise CfncError(f"--tile must be auto, S or HxW (frame pixels), got {tile!r}")
            tile = values[0] if len(values) == 1 else values
        return cls(as_hw(tile), overlap)

    def to_dict(self) -> dict:
        return {"size": None if self.size is None else list(self.size), "overlap": self.overlap}

    @classmethod
    def from_dict(cls, d: dict) -> Tiling:
        return cls(None if d.get("size") is None else as_hw(d["size"]), float(d.get("overlap", 0.0)))


@dataclass(frozen=True)
class Layout:
    """Where one frame's tiles lie: the scaled frame's (H, W) and each tile's (y, x)."""

    shape: tuple[int, int]
    origins: list[tuple[int, int]]


def starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile origins along one axis: a step of tile * (1 - overlap), the last one
    shifted back to end at the border."""
    if length <= tile:
        return [0]
    step = max(1, int(round(tile * (1 - overlap))))
    return sorted(set(range(0, length - tile, step)) | {length - tile})


def cut(frame: np.ndarray, model_hw: tuple[int, int], tiling: Tiling) -> tuple[list[np.ndarray], Layout]:
    """One BGR frame -> model-sized BGR tiles and their layout."""
    frame = to_bgr(frame)
    h, w = model_hw
    th, tw = tiling.size or (h, w)
    fh, fw = frame.shape[:2]
    if tiling.size is not None and fh < th and fw < tw:
        # the frame would be shrunk with the tile to a few pixels and padded:
        # a verdict on a smear (--tile 100000 scaled a 96 px frame to 1 px)
        raise CfncError(f"a {fw}x{fh} frame is smaller than one tile of {tw}x{th} pixels: "
                        f"use a smaller --tile or none")
    sh, sw = max(1, int(round(fh * h / th))), max(1, int(round(fw * w / tw)))
    count = len(starts(sh, h, tiling.overlap)) * len(starts(sw, w, tiling.overlap))
    if count > MAX_TILES:
        raise CfncError(f"a {fw}x{fh} frame cut into tiles of {tw}x{th} pixels with overlap {tiling.overlap} "
                        f"makes {count} tiles, more than {MAX_TILES}: use a larger --tile or less --tile-overlap")
    if (sh, sw) != (fh, fw):
        interp = cv2.INTER_AREA if sh < fh and sw < fw else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (sw, sh), interpolation=interp)
    if sh < h or sw < w:
        frame = cv2.copyMakeBorder(frame, 0, max(0, h - sh), 0, max(0, w - sw), cv2.BORDER_REPLICATE)
    origins = [(y, x) for y in starts(sh, h, tiling.overlap) for x in starts(sw, w, tiling.overlap)]
    return [frame[y:y + h, x:x + w] for y, x in origins], Layout((sh, sw), origins)


def cut_all(frames: list[np.ndarray], model_hw: tuple[int, int], tiling: Tiling):
    """Frames -> (all tiles in order, one layout per frame)."""
    tiles, layouts = [], []
    for f in frames:
        t, lay = cut(f, model_hw, tiling)
        tiles += t
        layouts.append(lay)
    return tiles, layouts


def stitch(maps: np.ndarray, layout: Layout) -> np.ndarray:
    """The (k, h, w) maps of one frame's tiles -> its (H, W) map, averaged where tiles overlap."""
    _, h, w = maps.shape
    sh, sw = layout.shape
    total = np.zeros((max(sh, h), max(sw, w)), np.float64)
    count = np.zeros_like(total)
    for m, (y, x) in zip(maps, layout.origins):
        total[y:y + h, x:x + w] += m
        count[y:y + h, x:x + w] += 1
    return (total / count)[:sh, :sw].astype(np.float32)

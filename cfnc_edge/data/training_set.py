"""The good images a bundle is fitted on: where they are, the input size they
are trained at, and loading them as model inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cfnc_edge.data.aspect import keep_aspect, median_aspect
from cfnc_edge.data.mvtec import MVTecDataset
from cfnc_edge.data.tiling import Tiling, cut_all
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw, list_images, preprocess, read_image


def _roots(data_root: Path | str | list) -> list:
    return list(data_root) if isinstance(data_root, (list, tuple)) else [data_root]


def good_paths(data_root: Path | str | list) -> list[Path]:
    """The good images of a dataset root (MVTec AD layout: train/good) or of several; a root
    without train/ may be a plain folder of good images (a review folder's good/)."""
    roots = [Path(r) for r in _roots(data_root)]
    paths = [p for r in roots for p in (list_images(r) if r.is_dir() and not (r / "train").exists()
                                        else MVTecDataset(r).train_images())]
    if len(paths) < 2:
        raise CfncError(f"{', '.join(map(str, roots))}: need at least 2 good training images, found {len(paths)}")
    return paths


def data_record(data_root: Path | str | list, n: int) -> dict:
    """The manifest's data: the first root (where export and calibration look for examples), any others beside."""
    roots = [str(r) for r in _roots(data_root)]
    return {"root": roots[0], "fit_images": n, **({"also": roots[1:]} if len(roots) > 1 else {})}


def input_size_for(image_size: int | list[int], paths: list[Path], stride: int) -> int | list[int]:
    """The model input size to train at: [h, w] as given, or for S the short side
    S at the images' median aspect ratio (data/aspect.py), the long side a multiple
    of the backbone's `stride`. A square is written as S, the form every bundle
    had before non-square inputs."""
    if not isinstance(image_size, int):
        h, w = image_size
    else:
        h, w = keep_aspect(image_size, median_aspect(paths), stride,
                           log=lambda m: warnings.warn(m, UserWarning, stacklevel=4))
    return h if h == w else [h, w]


def load_images(paths: list[Path], size: int | tuple[int, int], progress: bool = True) -> np.ndarray:
    """uint8 (N, 3, h, w) model inputs of the images at `paths` (size S or (h, w))."""
    out = np.empty((len(paths), 3, *as_hw(size)), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc="loading images", disable=not progress, unit="img", leave=False)):
        out[i] = preprocess([read_image(p)], size)[0]
    return out


def training_images(paths: list[Path], size: tuple[int, int], tiling: Tiling | None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 (N, 3, h, w) model inputs: the images, or with `tiling` their tiles
    (then also the frame each tile comes from)."""
    if tiling is None:
        return load_images(paths, size, progress), None
    tiles, frame_of = [], []
    for i, p in enumerate(paths):
        t = cut_all([read_image(p)], size, tiling)[0]
        tiles += t
        frame_of += [i] * len(t)
    return preprocess(tiles, size), np.array(frame_of)

"""The good images a bundle was trained on, for steps that need examples:
export parity checks, INT8 calibration, engine checks and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.images import list_images, preprocess, read_image


def image_paths(bundle: Bundle, images: Path | None = None) -> list[Path]:
    """Images of `images`, else of the bundle's training data (train/good)."""
    if images is None:
        root = bundle.manifest.get("data", {}).get("root")
        images = Path(root) / "train" / "good" if root else None
        if images is None or not images.is_dir():
            raise CfncError("the bundle's training images are not on this machine: pass --images DIR")
    images = Path(images)
    paths = list_images(images) if images.is_dir() else []
    if not paths:
        raise CfncError(f"{images} holds no images")
    return paths


def sample_images(bundle: Bundle, images: Path | None = None, n: int = 16) -> np.ndarray:
    """uint8 batch of n good images spread over `images` (default: the training data)."""
    paths = image_paths(bundle, images)
    step = max(1, len(paths) // n)
    return preprocess([read_image(p) for p in paths[::step][:n]], bundle.model_config["image_size"])

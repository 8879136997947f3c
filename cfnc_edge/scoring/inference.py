"""What a fitter needs from inference: the CPU steps that score features.

Held-out good images must be scored exactly as deployed frames will be, or
the threshold set from their scores does not hold. Those steps live in
runtime/, which ranks above scoring/, so the caller hands them in
(runtime.scoring.CPU_INFERENCE). No torch here: runtime/scoring.py, on the
torch-free inspection path, builds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Inference:
    """The CPU inference steps a fitter scores held-out good images with."""

    # (mean (P, d), packed factor (P, T), storage precision) -> features (B, d, h, w) -> distances (B, h, w)
    mahalanobis: Callable[[np.ndarray, np.ndarray, str], Callable[[np.ndarray], np.ndarray]]
    # (centred bank (M, C), center (C,)) -> (features (B, C, h, w), skip=(lo, hi) rows) -> distances (B, h, w)
    nearest: Callable[[np.ndarray, np.ndarray], Callable[..., np.ndarray]]
    # (Gaussian distances (B, h, w), bank distances (B, sh, sw), fusion constants (2,)) -> fused (B, h, w)
    fuse: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    # (distances (B, h', w'), ICA thetas (B, 2, 3), model input size) -> anomaly maps (B, h, w)
    maps: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray]

    def image_scores(self, distances: np.ndarray, thetas: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(B,) image scores: the maximum of each anomaly map, as inference scores a frame."""
        maps = self.maps(distances, thetas, size)
        return maps.reshape(len(maps), -1).max(1)

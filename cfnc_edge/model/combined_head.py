"""The combined head's output taken apart (no torch: the inspection path reads it too).

The combined head (model/coarse_to_fine.py) puts the projection's d channels
and the pooled channels, repeated onto the projection's grid, in one tensor.
"""

from __future__ import annotations


def split_combined(features, dim: int, pooled_shape: tuple[int, int]):
    """A combined head's output (B, d + C, h, w) -> (projection (B, d, h, w), pooled (B, C, sh, sw)).

    The pooled part was repeated onto the h x w grid by nearest-neighbour
    resizing (source row floor(i * sh / h)); row ceil(j * h / sh) is a copy of
    source row j, so taking those rows and columns gives the pooled map back
    exactly. Works on NumPy, CuPy and torch arrays alike.
    """
    rows, cols = pooled_index(features.shape[-2:], pooled_shape)
    return features[:, :dim], features[:, dim:][:, :, rows][:, :, :, cols]


def pooled_index(hw: tuple[int, int], pooled_shape: tuple[int, int]) -> tuple[list[int], list[int]]:
    """The rows and columns of an (h, w) combined grid that hold the pooled map (split_combined)."""
    (h, w), (sh, sw) = hw, pooled_shape
    return [(j * h + sh - 1) // sh for j in range(sh)], [(j * w + sw - 1) // sw for j in range(sw)]

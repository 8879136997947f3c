"""Cross-fitting: score every good training image with a scorer that never saw it.

Scores of images a scorer was fitted on are optimistically low (a patch's
nearest neighbour in the bank can be itself), so a threshold taken from them
flags too many good images later. The memory bank is built part by part
(scoring/memory_bank.py); leaving one part's rows out gives a bank fitted
without that part's images, and each part is scored against its own
leave-out bank. Every training image gets an honest score and none has to
be held back from the bank.

The fold logic here takes the per-fold scoring as a function, so the same
loop serves any scorer that can be refitted without a fold.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Folds of the Gaussian's cross-fit: each held-out Gaussian sees 90% of the
# images (with 5 folds, 80%: broader Gaussians that scored good images worse
# than the deployed one does, which raised the threshold).
FOLDS = 10


def part_rows(part: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """(lo, hi) bank rows of each part: the bank is built part after part, so a
    part's rows are contiguous and leaving it out is a skipped range, not a copy."""
    part = np.asarray(part)
    if np.any(np.diff(part) < 0):
        raise ValueError("bank rows are not ordered by part")
    lo = np.searchsorted(part, np.arange(parts), side="left")
    hi = np.searchsorted(part, np.arange(parts), side="right")
    return list(zip(lo.tolist(), hi.tolist()))


def part_of(parts: list[np.ndarray], n: int) -> np.ndarray:
    """(n,) the part each image index is in."""
    out = np.empty(n, np.int64)
    for j, idx in enumerate(parts):
        out[idx] = j
    return out


def leave_part_out(bank: dict[str, np.ndarray], part: int) -> dict[str, np.ndarray]:
    """The bank tensors without the rows that came from `part` (same centre)."""
    keep = bank["part"] != part
    if not keep.any():
        raise ValueError(f"the bank holds nothing outside part {part}: cross-fitting needs two parts or more")
    return {"bank": bank["bank"][keep], "center": bank["center"], "part": bank["part"][keep]}


def crossfit_scores(parts: list[np.ndarray], score_fold: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """scores[i] for every image index in `parts`, fold j scored by
    score_fold(j, indices of fold j) -> (len(indices), ...) (one score, or a row of them, per image)."""
    n = sum(len(p) for p in parts)
    scores = None
    for j, idx in enumerate(parts):
        got = np.asarray(score_fold(j, idx))
        if scores is None:
            scores = np.full((n, *got.shape[1:]), np.nan)
        scores[idx] = got
    return scores

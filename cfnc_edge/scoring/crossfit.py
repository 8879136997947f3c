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

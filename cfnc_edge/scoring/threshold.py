"""The decision threshold from the scores of good images."""

from __future__ import annotations

import numpy as np


def threshold_from_scores(scores: np.ndarray, quantile: float) -> dict:
    scores = np.asarray(scores, dtype=np.float64)
    return {"value": float(np.quantile(scores, quantile)), "quantile": quantile, "n": int(scores.size),
            "good_mean": float(scores.mean()), "good_std": float(scores.std()), "good_max": float(scores.max())}


def normalized(score, threshold: float):
    """Scores scaled so that the threshold is 0.5, clipped to [0, 1].

    Distances are non-negative, so 0 stays 0 and twice the threshold is 1:
    the same scale the heatmaps are coloured on.
    """
    return np.clip(0.5 * np.asarray(score, np.float64) / threshold, 0.0, 1.0).astype(np.float64)[()]

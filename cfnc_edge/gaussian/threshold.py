"""The decision threshold from the scores of good images."""

from __future__ import annotations

import numpy as np


def threshold_from_scores(scores: np.ndarray, quantile: float) -> dict:
    scores = np.asarray(scores, dtype=np.float64)
    return {"value": float(np.quantile(scores, quantile)), "quantile": quantile, "n": int(scores.size),
            "good_mean": float(scores.mean()), "good_std": float(scores.std()), "good_max": float(scores.max())}

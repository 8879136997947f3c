"""The decision threshold from the scores of good images, for a target false-alarm rate.

The scores must come from images the scoring model did not see (a good
image's score under a Gaussian fitted on it is optimistically low): the
training pipeline cross-fits (scoring/fit.py), any other scorer can pass
its own fold-held-out scores.

Threshold = the k-th smallest of n such scores with k = ceil((1 - a)(n + 1)).
For exchangeable scores a new good image exceeds it with probability
(n + 1 - k) / (n + 1) <= a (the conformal guarantee), and the false-alarm
rate given this particular set of n images is Beta(n + 1 - k, k) distributed:
its spread is what n images can promise. With n < 1/a - 1 images even the
maximum is not enough for the asked rate: the threshold is then the maximum
and a warning says how many images the rate needs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def threshold_for_fpr(scores: np.ndarray, target_fpr: float = 0.01) -> dict:
    """Threshold of per-image good scores (from fold-held-out models) for the
    asked false-alarm rate, with the expected rate and its uncertainty."""
    if not 0 < target_fpr < 1:
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_fpr}")
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    n = scores.size
    if n == 0:
        raise ValueError("no good-image scores to set a threshold from")
    # 1e-9: (1 - a)(n + 1) is often an integer computed with a rounding error above it
    k = min(n, math.ceil((1 - target_fpr) * (n + 1) - 1e-9))
    a, b = n + 1 - k, k  # the false-alarm rate given these n images ~ Beta(a, b)
    info = {"value": float(scores[k - 1]), "target_fpr": target_fpr, "n": int(n), "rank": int(k),
            "expected_fpr": a / (n + 1), "fpr_std": math.sqrt(a * b / ((n + 1) ** 2 * (n + 2))),
            "fpr_upper95": float(stats.beta.ppf(0.95, a, b)),
            "good_mean": float(scores.mean()), "good_std": float(scores.std()), "good_max": float(scores[-1]),
            # sorted; the stream's drift alarm ranks each frame among them (stream/drift.py)
            "good_scores": [float(f"{s:.6g}") for s in scores]}
    needed = math.ceil(1 / target_fpr - 1)
    if n < needed:
        info["warning"] = (f"{n} good images cannot hold a {100 * target_fpr:g}% false-alarm rate "
                           f"(expected {100 * info['expected_fpr']:.1f}%): the rate needs at least {needed}; "
                           "add good images or ask for a higher --target-fpr")
        warnings.warn(info["warning"], RuntimeWarning, stacklevel=2)
    return info


def normalized(score, threshold: float):
    """Scores scaled so that the threshold is 0.5, clipped to [0, 1].

    Distances are non-negative, so 0 stays 0 and twice the threshold is 1:
    the same scale the heatmaps are coloured on.
    """
    return np.clip(0.5 * np.asarray(score, np.float64) / threshold, 0.0, 1.0).astype(np.float64)[()]

"""The decision threshold from the scores of good images, for a target false-alarm rate.

The scores must come from images the scoring model did not see (a good
image's score under a Gaussian fitted on it is optimistically low): the
training pipeline cross-fits (scoring/gaussian_fit.py), any other scorer can pass
its own fold-held-out scores.

Threshold = the k-th smallest of n such scores with k = ceil((1 - a)(n + 1)).
For exchangeable scores a new good image exceeds it with probability
(n + 1 - k) / (n + 1) <= a (the conformal guarantee), and the false-alarm
rate given this particular set of n images is Beta(n + 1 - k, k) distributed:
its spread is what n images can promise.

With n < 1/a - 1 images no order statistic holds rate a (the maximum gives
1/(n+1)). Returning the maximum then flags fewer defects than asked for
(the rate is 2% for a 1% target at n = 50, and the maximum is the noisiest
statistic of all). Instead the tail is extrapolated with a stated model: an
image score is the maximum of an anomaly map over many positions, and the
limit law of such maxima is the Gumbel distribution (extreme value type I),
fitted by maximum likelihood; the threshold is its 1 - a quantile. A model
is not a guarantee: the record says so, and its spread comes from a
parametric bootstrap (refit on n draws from the fitted law, the exceedance
of the refitted quantile under the fitted law), so a small n shows as a
wide spread.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


TAIL_BOOTSTRAP = 200  # parametric bootstrap draws for the extrapolated threshold's spread


def gumbel_tail(scores: np.ndarray, target_fpr: float, seed: int = 0, draws: int = TAIL_BOOTSTRAP) -> dict:
    """The 1 - target_fpr quantile of a Gumbel law fitted to `scores`, and the false-alarm
    rate that quantile has under the fitted law when it is estimated from n draws."""
    scores = np.asarray(scores, np.float64)
    loc, scale = stats.gumbel_r.fit(scores)
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(draws):
        draw = stats.gumbel_r.rvs(loc, scale, size=scores.size, random_state=rng)
        rates.append(stats.gumbel_r.sf(stats.gumbel_r.isf(target_fpr, *stats.gumbel_r.fit(draw)), loc, scale))
    rates = np.asarray(rates)
    return {"value": float(stats.gumbel_r.isf(target_fpr, loc, scale)),
            "tail": {"model": "gumbel", "loc": float(loc), "scale": float(scale)},
            "expected_fpr": float(rates.mean()), "fpr_std": float(rates.std()),
            "fpr_upper95": float(np.quantile(rates, 0.95))}


# below this many scores a two-parameter fit is not worth more than the maximum
MIN_TAIL_SCORES = 10


def threshold_for_fpr(scores: np.ndarray, target_fpr: float = 0.01) -> dict:
    """Threshold of per-image good scores (from held-out models) for the
    asked false-alarm rate, with the expected rate and its uncertainty
    (too few scores for the rate: the Gumbel tail's quantile, `tail` in the record)."""
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
    if n < needed and n >= MIN_TAIL_SCORES and scores[-1] > scores[0]:
        info.update(gumbel_tail(scores, target_fpr))
        info.pop("rank")
        info["warning"] = (f"{n} good images cannot hold a {100 * target_fpr:g}% false-alarm rate by rank (that "
                           f"needs at least {needed}): the threshold extrapolates the good scores' tail with a "
                           f"Gumbel fit, expected {100 * info['expected_fpr']:.1f}% +- {100 * info['fpr_std']:.1f}% "
                           "under that model; add good images for a rate that needs no model")
        warnings.warn(info["warning"], RuntimeWarning, stacklevel=2)
    elif n < needed:
        info["warning"] = (f"{n} good images cannot hold a {100 * target_fpr:g}% false-alarm rate "
                           f"(expected {100 * info['expected_fpr']:.1f}%): the rate needs at least {needed}; "
                           "add good images or ask for a higher --target-fpr")
        warnings.warn(info["warning"], RuntimeWarning, stacklevel=2)
    return info


def threshold_record(scores: np.ndarray, target_fpr: float, value: float | None = None) -> dict:
    """The threshold record of held-out good scores for `target_fpr`, or with the user's
    `value` in its place: what the good images say about it is then their fraction above
    it (the promise for the target rate no longer applies)."""
    info = threshold_for_fpr(scores, target_fpr)
    if value is None:
        return info
    for k in ("rank", "expected_fpr", "fpr_std", "fpr_upper95", "warning", "tail"):
        info.pop(k, None)
    return {**info, "value": float(value), "user_set": True, "good_above": float((scores > value).mean())}


def normalized(score, threshold: float):
    """Scores scaled so that the threshold is 0.5, clipped to [0, 1].

    Distances are non-negative, so 0 stays 0 and twice the threshold is 1:
    the same scale the heatmaps are coloured on.
    """
    return np.clip(0.5 * np.asarray(score, np.float64) / threshold, 0.0, 1.0).astype(np.float64)[()]

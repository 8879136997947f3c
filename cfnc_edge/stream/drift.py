"""Drift alarm: do a source's frames still score like the good images the bundle was calibrated on?

Each frame's normalised score becomes a conformal p-value: the fraction of a
bag of scores at or above it, ties broken at random (the smoothed p-value).
The bag starts as the bundle's cross-fitted good scores (manifest
`threshold.good_scores`, normalised with the stream's threshold) and takes in
every frame after its p-value is computed. If the good scores and the frames
are exchangeable (the light, the camera and the parts did not change), these
p-values are independent and uniform on (0, 1) (Vovk, Nouretdinov and
Gammerman, "Testing exchangeability on-line", ICML 2003); against a fixed
bag they would not be: the n good scores' own sampling error would
accumulate into an alarm on any long enough stream.

A test martingale bets against uniformity: M_t = mean over eps of
prod_i eps * p_i ** (eps - 1), a mixture of power martingales. Each factor
has expectation 1 for a uniform p, so M is non-negative with M_0 = 1 and
E[M_t | past] = M_{t-1}; Ville's inequality then bounds the chance that it
*ever* reaches C:

    P(sup_t M_t >= C) <= 1 / C   under exchangeability,

so the alarm at C (`--drift-alarm`, default 100) is false with probability
at most 1%, however long the stream runs. After a shift, the scores are
higher, the p-values small and M grows geometrically. The bets (eps) sit
densely near 1: those lose least on a long stationary stream, so the delay
after hours of good frames grows only about as the square root of their
number. The normalised score is clipped at 1 (twice the threshold): clipped
frames tie, and the ties are broken at random like any other.

A sustained rate of real defects above the bundle's target false-alarm rate
is also a change the martingale sees: it cannot tell a drifting camera from a
line that makes more bad parts, and both deserve a look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from cfnc_edge.errors import CfncError

# 1 - eps spaced geometrically from 0.002 to 0.98, and eps = 1 (no bet): one
# grid for small drifts seen over long streams and large steps seen at once
EPS = np.concatenate([1 - np.geomspace(0.98, 0.002, 30), [1.0]])
_LOG_EPS = np.log(EPS)
BINS = 4096  # the bag is a histogram of normalised scores in [0, 1]: constant memory however long the stream


def log_bet_factors(p: np.ndarray) -> np.ndarray:
    """log(eps * p ** (eps - 1)) for every eps of the grid, on a new last axis."""
    return _LOG_EPS + (EPS - 1) * np.log(np.asarray(p, np.float64))[..., None]


def log_martingale(p: np.ndarray) -> np.ndarray:
    """log M_t after each p-value along the last axis of `p` (batched form of DriftMonitor's update)."""
    return logsumexp(np.cumsum(log_bet_factors(p), axis=-2), axis=-1) - np.log(EPS.size)


def _bin(score: float | np.ndarray) -> np.ndarray:
    return np.minimum((np.clip(np.asarray(score, np.float64), 0, 1) * BINS).astype(np.int64), BINS - 1)


@dataclass
class DriftState:
    """The drift test after one frame: its p-value, the martingale, whether it has reached the alarm."""

    p_value: float
    martingale: float
    alarm: bool


class DriftMonitor:
    """The conformal test martingale of one source (see the module docstring).

    `good_scores`: the bundle's cross-fitted good-image scores, normalised
    like the frames' (Inspection.normalized_score). `alarm`: C; once reached
    the alarm stays raised (`alarm_frame`: the frame count at which it was).
    """

    def __init__(self, good_scores: np.ndarray, alarm: float = 100.0, seed: int = 0):
        if not alarm > 1:
            raise CfncError(f"--drift-alarm {alarm:g}: give a level above 1 (false alarms at most 1/level), "
                            "or 0 to turn the drift alarm off")
        good = np.asarray(good_scores, np.float64)
        if good.size == 0:
            raise CfncError("no good-image scores to test drift against")
        self.bag = np.bincount(_bin(good), minlength=BINS).astype(np.int64)
        self.n = int(good.size)
        self.alarm = float(alarm)
        self.rng = np.random.default_rng(seed)
        self.log_wealth = np.zeros(EPS.size)  # log of each power martingale
        self.frames = 0
        self.alarm_frame: int | None = None
        self.martingale = 1.0

    def p_value(self, score: float) -> float:
        """Smoothed conformal p-value of `score` against the bag; `score` then joins the bag."""
        b = int(_bin(score))
        above, ties = int(self.bag[b + 1:].sum()), int(self.bag[b])
        p = (above + self.rng.uniform() * (ties + 1)) / (self.n + 1)
        self.bag[b] += 1
        self.n += 1
        return max(p, 1e-300)  # a uniform draw of exactly 0 (probability 2^-53) must not give log(0)

    def update(self, score: float) -> DriftState:
        p = self.p_value(score)
        self.log_wealth += log_bet_factors(p)
        top = self.log_wealth.max()  # logsumexp by hand: scipy's costs ~50 us a frame in checks
        log_m = top + np.log(np.exp(self.log_wealth - top).mean())
        self.martingale = float(np.exp(min(log_m, 700.0)))
        self.frames += 1
        if self.alarm_frame is None and self.martingale >= self.alarm:
            self.alarm_frame = self.frames
        return DriftState(p, self.martingale, self.alarm_frame is not None)

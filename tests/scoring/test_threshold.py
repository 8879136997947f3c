import math

import numpy as np
import pytest
from scipy import stats

from cfnc_edge.scoring.gaussian_fit import crossfit_scores, fit_gaussian
from cfnc_edge.scoring.packing import unpack
from cfnc_edge.scoring.threshold import gumbel_tail, normalized, threshold_for_fpr


def test_threshold_is_the_conformal_order_statistic():
    t = threshold_for_fpr(np.arange(99, 0, -1.0), 0.01)  # 99 scores: the maximum gives exactly 1%
    assert t["value"] == 99 and t["rank"] == 99 and t["expected_fpr"] == pytest.approx(0.01)
    t = threshold_for_fpr(np.arange(1, 200.0), 0.05)  # 199 scores: the 190th
    assert t["value"] == 190 and t["expected_fpr"] == pytest.approx(10 / 200)
    assert t["fpr_std"] == pytest.approx(math.sqrt(10 * 190 / (200 ** 2 * 201)))
    assert "warning" not in t


def test_too_few_images_for_the_rate_warn_and_say_how_many():
    with pytest.warns(RuntimeWarning, match="at least 99"):
        t = threshold_for_fpr(np.arange(48.0), 0.01)
    assert t["tail"]["model"] == "gumbel" and "rank" not in t
    with pytest.warns(RuntimeWarning, match="at least 99"):  # too few even for a fit: the maximum
        t = threshold_for_fpr(np.arange(5.0), 0.01)
    assert t["value"] == 4 and t["expected_fpr"] == pytest.approx(1 / 6) and "tail" not in t


def test_gumbel_tail_recovers_the_quantile_of_a_known_distribution(rng):
    """Scores drawn from a known Gumbel law, 50 at a time (too few for 1% by rank):
    the extrapolated threshold's true exceedance averages the 1% asked for (within
    0.3 points over 300 sets), its spread matches the reported one, and it is far
    closer to the truth than the maximum (whose rate is 1/51 on average)."""
    loc, scale, a = 3.0, 0.6, 0.01
    rates, stds = [], []
    for _ in range(300):  # 20 bootstrap draws per set (not the default 200) keep the test short
        t = gumbel_tail(stats.gumbel_r.rvs(loc, scale, size=50, random_state=rng), a, draws=20)
        rates.append(stats.gumbel_r.sf(t["value"], loc, scale))
        stds.append(t["fpr_std"])
    assert np.mean(rates) == pytest.approx(a, abs=0.003)
    assert np.std(rates) == pytest.approx(np.mean(stds), rel=0.35)
    assert abs(np.mean(rates) - a) < abs(1 / 51 - a) / 2
    with pytest.warns(RuntimeWarning, match="Gumbel"):  # and threshold_for_fpr uses it for n < 99 at 1%
        t = threshold_for_fpr(stats.gumbel_r.rvs(loc, scale, size=50, random_state=rng), a)
    assert t["tail"]["model"] == "gumbel" and 0 < t["expected_fpr"] < 0.03


def test_false_alarm_rate_on_new_images_matches_the_promise(rng):
    """Constructed case: good scores ~ N(0,1). Over many training sets of 150
    images, the true rate 1 - Phi(threshold) averages the expected rate and
    spreads by the reported std (the old 0.99-quantile of 10% held out did not)."""
    fprs = []
    for _ in range(3000):
        t = threshold_for_fpr(rng.normal(size=150), 0.02)
        fprs.append(stats.norm.sf(t["value"]))
    assert np.mean(fprs) == pytest.approx(t["expected_fpr"], abs=0.0015)  # 3000 sets: s.e. ~2e-4
    assert np.std(fprs) == pytest.approx(t["fpr_std"], rel=0.1)


def test_crossfitted_scores_come_from_gaussians_that_did_not_see_the_image(rng):
    n, d, positions = 40, 5, 3
    x = rng.normal(size=(n, d, 1, positions)) * [[[1]], [[2]], [[0.5]], [[1]], [[3]]] + 4

    def batches(idx):
        for i in range(0, len(idx), 7):
            sel = idx[i:i + 7]
            yield sel, x[sel], np.tile(np.eye(2, 3), (len(sel), 1, 1))

    def score(mean, factor, feats, thetas):  # max over positions of the Mahalanobis distance
        w = unpack(factor, d)
        delta = feats[:, :, 0, :].transpose(2, 1, 0) - mean[:, :, None]  # (P, d, B)
        dist = np.sqrt((np.matmul(w, delta) ** 2).sum(1)).T  # (B, P)
        return dist.max(1), dist.mean(1)

    fit = fit_gaussian(batches, n, positions, d, covariance="eps", eps=0.0, folds=4)
    held, _ = crossfit_scores(batches, fit, score)
    for i in (0, 17, 39):  # reference: a plain float64 fit on the other folds' images
        others = x[fit.fold_of != fit.fold_of[i], :, 0, :]
        ref = max(math.sqrt(float(np.dot(v := x[i, :, 0, p] - others[:, :, p].mean(0),
                                         np.linalg.solve(np.cov(others[:, :, p], rowvar=False), v))))
                  for p in range(positions))
        assert held[i] == pytest.approx(ref, rel=1e-9)
    in_sample, _ = score(fit.mean, fit.factor, x, None)
    assert held.mean() > in_sample.mean()  # why cross-fitting: seen images score optimistically low


def test_normalized_score_puts_the_threshold_at_one_half():
    assert normalized(np.array([0.0, 2.0, 4.0, 9.0]), 4.0).tolist() == [0.0, 0.25, 0.5, 1.0]

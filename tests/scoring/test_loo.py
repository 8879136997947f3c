"""Leave-one-out Mahalanobis distances against a float64 refit without the image."""

import numpy as np
import pytest

from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor
from cfnc_edge.scoring.loo import downdate_beta, loo_distances


@pytest.mark.parametrize("covariance", ["ledoit-wolf", "oas", "eps"])
def test_loo_distances_equal_a_refit_without_the_image(rng, covariance):
    n, d, h, w = 12, 6, 2, 3
    x = rng.normal(size=(n, d, h, w)) * rng.uniform(0.5, 3, size=(1, d, 1, 1)) + 2
    y = x + rng.normal(scale=0.7, size=x.shape)  # an image derived from each (a defect on it)
    acc = GaussianAccumulator(h * w, d)
    acc.update(x)
    mean, cov, shrink = acc.finalize_with_shrinkage(0.01, covariance)
    beta = downdate_beta(n, shrink, covariance)
    got_x, got_y = loo_distances(mean, whitening_factor(cov), beta, n, x, [x, y])
    flat = x.reshape(n, d, -1)
    for i in (0, 5, 11):
        others = np.delete(flat, i, axis=0)  # (n-1, d, P)
        for p in range(h * w):
            o = others[:, :, p]
            m = o.mean(0)
            c = (o - m).T @ (o - m)  # scatter of the n - 1 images
            if covariance == "eps":  # the fit's normalisation (module docstring): 1/(n-1), eps kept
                s = c / (n - 1) + 0.01 * np.eye(d)
            else:  # 1/n, the full fit's shrinkage rho and target mu kept
                full = flat[:, :, p]
                mu = np.trace(np.cov(full, rowvar=False, bias=True)) / d
                s = (1 - shrink[p]) * c / n + shrink[p] * mu * np.eye(d)
            for query, got in ((flat[i, :, p], got_x), (y.reshape(n, d, -1)[i, :, p], got_y)):
                ref = np.sqrt((query - m) @ np.linalg.solve(s, query - m))
                assert got[i].reshape(-1)[p] == pytest.approx(ref, rel=1e-5)  # float32 output


def test_loo_distance_of_a_good_image_exceeds_its_in_sample_distance(rng):
    n, d = 20, 8
    x = rng.normal(size=(n, d, 1, 4))
    acc = GaussianAccumulator(4, d)
    acc.update(x)
    mean, cov, shrink = acc.finalize_with_shrinkage(0.01, "ledoit-wolf")
    factor = whitening_factor(cov)
    (loo,) = loo_distances(mean, factor, downdate_beta(n, shrink, "ledoit-wolf"), n, x, [x])
    (seen,) = loo_distances(mean, factor, np.zeros(4), n, x, [x - (x - mean.T[None, :, None, :]) / (n - 1)])
    assert (loo > seen).all()  # the point of leaving out: a seen image scores optimistically low

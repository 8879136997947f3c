"""Leave-one-out Mahalanobis distances from one Gaussian fit (Sherman-Morrison).

The threshold and the label-free selection need every good image scored by
a Gaussian that did not see it. Refitting without each image costs a
whitening factor per image; folds cost positions x d^2 floats per fold and
leave more than one image out. Without image i, with the shrinkage
intensity rho and target mu held at the full fit's values:

    mean   m_-i = m - v / (n - 1),  v = x_i - m
    cov    S_-i = S - beta v v^T    (beta = (1 - rho) / (n - 1) for the shrunk
                                      biased covariance, n / (n - 1)^2 for "eps")

a rank-one downdate, so with W the full fit's whitening factor (W^T W = S^-1),
a = W (y - m_-i) and b = W v:

    d^2(y) = |a|^2 + beta (a.b)^2 / (1 - beta |b|^2)

for the image itself (y = x_i) or any image derived from it (its synthetic
defect). The cost is two triangular products per image, as for one
distance. What is held fixed: rho and mu are not re-estimated without the
image (with tens of images they move by about 1/n of themselves), and the
sample covariance keeps the full fit's normalisation (1/n, or 1/(n-1) for
"eps") rather than that of n - 1 images: a factor (n - 1)/n on the sample
part. tests/scoring/test_loo.py checks the formula against a float64 refit
with those conventions.
"""

from __future__ import annotations

import numpy as np
import torch

from cfnc_edge.scoring.packing import unpack


def downdate_beta(n: int, shrinkage: np.ndarray, covariance: str) -> np.ndarray:
    """(P,) the rank-one coefficient beta of the estimator (see the module docstring)."""
    if covariance == "eps":
        return np.full(np.shape(shrinkage), n / (n - 1) ** 2)
    return (1.0 - np.asarray(shrinkage, np.float64)) / (n - 1)


def loo_distances(mean: np.ndarray, factor: np.ndarray, beta: np.ndarray, n: int, own: np.ndarray,
                  queries: list[np.ndarray]) -> list[np.ndarray]:
    """mean (P,d), packed factor (P,T), beta (P,), the fit's image count n, the features of
    the images left out `own` (B,d,h,w) -> for each query (B,d,h,w) (query b derived from
    image b), its distances (B,h,w) under the Gaussian without that image, float32."""
    p, d = mean.shape
    w = torch.from_numpy(unpack(np.asarray(factor, np.float64), d))  # (P, d, d) lower triangular
    m = torch.from_numpy(np.asarray(mean, np.float64))[:, :, None]
    bt = torch.from_numpy(np.asarray(beta, np.float64))[:, None]

    def positions_first(x: np.ndarray) -> torch.Tensor:  # (B, d, h, w) -> (P, d, B)
        return torch.from_numpy(np.asarray(x, np.float64)).flatten(2).permute(2, 1, 0).contiguous()
    v = positions_first(own) - m
    b = torch.bmm(w, v)
    denom = (1.0 - bt * (b * b).sum(1)).clamp_min(1e-12)
    out = []
    for y in queries:
        a = torch.bmm(w, positions_first(y) - m + v / (n - 1))
        d2 = (a * a).sum(1) + bt * (a * b).sum(1) ** 2 / denom  # (P, B)
        h, wd = y.shape[-2:]
        out.append(d2.clamp_min(0).sqrt().T.reshape(len(y), h, wd).float().numpy())
    return out

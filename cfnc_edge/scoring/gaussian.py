"""Per-position Gaussian: streaming float64 statistics and the whitening factor.

Memory is O(positions * d^2) whatever the number of images: sums are
accumulated batch by batch (about a fixed shift, so that the subtraction in
the covariance formula does not cancel catastrophically). The sums are
additive: two accumulators with the same shift add, and the total minus one
fold's sums is the Gaussian of the other folds (cross-fitting, scoring/crossfit.py).

The covariance of few images (tens, against d = 100 dimensions) is
under-determined, so the default estimator shrinks the sample covariance S
towards mu*I (mu = trace(S)/d) by an amount estimated from the data at each
position: Ledoit-Wolf (distribution-free; needs the sums of ||x||^2 x and
||x||^4, streamed too) or OAS (assumes Gaussian data; needs only S). Both
match scikit-learn's LedoitWolf / OAS on S = the biased (1/n) covariance.
"eps" is the fixed regulariser Sigma + eps*I of PaDiM, on the unbiased one.

With Sigma = C C^T (Cholesky), the squared Mahalanobis distance is
||C^-1 (x - mu)||^2. C^-1 is lower triangular, so it is stored packed:
d(d+1)/2 values per position instead of d^2 for a full inverse.
"""

from __future__ import annotations

import numpy as np
import torch

from cfnc_edge.scoring.packing import tril_index

COVARIANCES = ("ledoit-wolf", "oas", "eps")


class GaussianAccumulator:
    def __init__(self, positions: int, dim: int, shift: torch.Tensor | None = None):
        self.positions, self.dim = positions, dim
        self.n = 0
        self.shift = shift
        self.s1 = torch.zeros(positions, dim, dtype=torch.float64)
        self.s2 = torch.zeros(positions, dim, dim, dtype=torch.float64)
        self.s3 = torch.zeros(positions, dim, dtype=torch.float64)  # sum ||x||^2 x (Ledoit-Wolf)
        self.s4 = torch.zeros(positions, dtype=torch.float64)  # sum ||x||^4 (Ledoit-Wolf)

    def update(self, features) -> None:
        """features: (B, d, h, w) with h*w == positions."""
        x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
        # contiguous: elementwise ops keep the permuted strides, and bmm on them was 60x slower
        x = x.detach().to(torch.float64).flatten(2).permute(2, 0, 1).contiguous()  # (P, B, d)
        if x.shape[0] != self.positions or x.shape[2] != self.dim:
            raise ValueError(f"expected features with {self.dim} channels and {self.positions} positions, "
                             f"got {x.shape[2]} and {x.shape[0]}")
        if self.shift is None:
            self.shift = x.mean(1)
        x = x - self.shift[:, None, :]
        sq = x.pow(2).sum(2)  # (P, B)
        self.s1 += x.sum(1)
        self.s2 += x.transpose(1, 2) @ x
        self.s3 += (sq[:, :, None] * x).sum(1)
        self.s4 += sq.pow(2).sum(1)
        self.n += x.shape[1]

    def _combine(self, other: GaussianAccumulator, sign: int) -> GaussianAccumulator:
        if other.shift is not None and self.shift is not None and not torch.equal(self.shift, other.shift):
            raise ValueError("accumulators with different shifts cannot be combined")
        out = GaussianAccumulator(self.positions, self.dim, self.shift if self.shift is not None else other.shift)
        out.n = self.n + sign * other.n
        for k in ("s1", "s2", "s3", "s4"):
            setattr(out, k, getattr(self, k) + sign * getattr(other, k))
        return out

    def __add__(self, other: GaussianAccumulator) -> GaussianAccumulator:
        return self._combine(other, 1)

    def __sub__(self, other: GaussianAccumulator) -> GaussianAccumulator:
        return self._combine(other, -1)

    def finalize(self, eps: float = 0.01, covariance: str = "eps") -> tuple[np.ndarray, np.ndarray]:
        """(mean (P,d), regularised covariance (P,d,d)), float64. `covariance`
        is one of COVARIANCES; eps is used by "eps" only."""
        mean, cov, _ = self.finalize_with_shrinkage(eps, covariance)
        return mean, cov

    def finalize_with_shrinkage(self, eps: float = 0.01, covariance: str = "eps"):
        """As finalize, plus the per-position shrinkage intensity (P,) (zeros for "eps")."""
        if covariance not in COVARIANCES:
            raise ValueError(f"unknown covariance estimator {covariance!r}; choose from {', '.join(COVARIANCES)}")
        if self.n < 2:
            raise ValueError("a Gaussian needs at least 2 images")
        n, d = self.n, self.dim
        m = self.s1 / n
        scatter = self.s2 - n * m[:, :, None] * m[:, None, :]  # sum of (x - m)(x - m)^T
        eye = torch.eye(d, dtype=torch.float64)
        if covariance == "eps":
            cov = scatter.div_(n - 1).add_(eps * eye)
            return (self.shift + m).numpy(), cov.numpy(), np.zeros(self.positions)
        s = scatter.div_(n)  # in place: a few (P, d, d) float64 arrays are hundreds of MB
        tr = torch.diagonal(s, dim1=1, dim2=2).sum(1)
        mu = tr / d
        frob2 = torch.linalg.matrix_norm(s).pow(2)  # trace(S^2)
        if covariance == "oas":
            alpha, mu2 = frob2 / d**2, mu**2
            num, den = alpha + mu2, (n + 1) * (alpha - mu2 / d)
            shrink = torch.where(den == 0, torch.ones_like(num), torch.clamp(num / den.where(den != 0, 1), max=1.0))
        else:
            shrink = self._ledoit_wolf(m, tr, mu, frob2)
        cov = s.mul_((1 - shrink)[:, None, None])
        torch.diagonal(cov, dim1=1, dim2=2).add_((shrink * mu)[:, None])
        return (self.shift + m).numpy(), cov.numpy(), shrink.numpy()

    def _ledoit_wolf(self, m, tr, mu, frob2):
        """scikit-learn's ledoit_wolf_shrinkage from streamed moments about the mean."""
        n, d = self.n, self.dim
        # sum_k ||x_k - m||^4 expanded in the streamed sums (x about the shift)
        mm = (m * m).sum(1)
        xm2 = torch.einsum("pi,pij,pj->p", m, self.s2, m)  # sum (x.m)^2
        s4c = (self.s4 - 4 * (self.s3 * m).sum(1) + 4 * xm2 + 2 * mm * torch.diagonal(self.s2, dim1=1, dim2=2).sum(1)
               - 4 * mm * (self.s1 * m).sum(1) + n * mm**2)
        beta = (s4c / n - frob2) / (d * n)
        delta = (frob2 - tr**2 / d) / d
        beta = torch.minimum(beta, delta)
        return torch.where(beta == 0, torch.zeros_like(beta), beta / delta.where(delta != 0, 1))


def whitening_factor(cov: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Packed C^-1 (P, d(d+1)/2) in float64, C = cholesky(cov).

    Batched Cholesky, then LAPACK's triangular inverse (dtrtri) per position:
    a general solve against the identity was most of the fitting time once
    cross-fitting needs one factor per fold (25x slower at d = 100).
    """
    from scipy.linalg import lapack

    p, d, _ = cov.shape
    rows, cols = tril_index(d)
    out = np.empty((p, rows.size), dtype=np.float64)
    for s in range(0, p, chunk):
        c = torch.linalg.cholesky(torch.from_numpy(np.ascontiguousarray(cov[s:s + chunk]))).numpy()
        for i in range(c.shape[0]):
            inv, info = lapack.dtrtri(c[i], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"singular Cholesky factor at position {s + i}")
            out[s + i] = inv[rows, cols]
    return out

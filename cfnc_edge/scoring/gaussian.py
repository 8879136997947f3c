"""Per-position Gaussian: streaming float64 statistics and the whitening factor.

Memory is O(positions * d^2) whatever the number of images: sums are
accumulated batch by batch (about shifted data, so that the subtraction in
the covariance formula does not cancel catastrophically).

With Sigma + eps*I = C C^T (Cholesky), the squared Mahalanobis distance is
||C^-1 (x - mu)||^2. C^-1 is lower triangular, so it is stored packed:
d(d+1)/2 values per position instead of d^2 for a full inverse.
"""

from __future__ import annotations

import numpy as np
import torch

from cfnc_edge.scoring.packing import tril_index


class GaussianAccumulator:
    def __init__(self, positions: int, dim: int):
        self.positions, self.dim = positions, dim
        self.n = 0
        self.shift: torch.Tensor | None = None
        self.s1 = torch.zeros(positions, dim, dtype=torch.float64)
        self.s2 = torch.zeros(positions, dim, dim, dtype=torch.float64)

    def update(self, features) -> None:
        """features: (B, d, h, w) with h*w == positions."""
        x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
        x = x.detach().to(torch.float64).flatten(2).permute(2, 0, 1)  # (P, B, d)
        if x.shape[0] != self.positions or x.shape[2] != self.dim:
            raise ValueError(f"expected features with {self.dim} channels and {self.positions} positions, "
                             f"got {x.shape[2]} and {x.shape[0]}")
        if self.shift is None:
            self.shift = x.mean(1)
        x = x - self.shift[:, None, :]
        self.s1 += x.sum(1)
        self.s2 += x.transpose(1, 2) @ x
        self.n += x.shape[1]

    def finalize(self, eps: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
        """(mean (P,d), covariance + eps*I (P,d,d)), float64."""
        if self.n < 2:
            raise ValueError("a Gaussian needs at least 2 images")
        m = self.s1 / self.n
        cov = (self.s2 - self.n * m[:, :, None] * m[:, None, :]) / (self.n - 1)
        cov += eps * torch.eye(self.dim, dtype=torch.float64)
        return (self.shift + m).numpy(), cov.numpy()


def whitening_factor(cov: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Packed C^-1 (P, d(d+1)/2) in float64, C = cholesky(cov).

    Chunked NumPy: one huge batched call is far slower (and memory hungry)
    than many medium ones at real sizes (3136 positions x d in the hundreds).
    """
    p, d, _ = cov.shape
    rows, cols = tril_index(d)
    out = np.empty((p, rows.size), dtype=np.float64)
    eye = np.eye(d)
    for s in range(0, p, chunk):
        c = np.linalg.cholesky(cov[s:s + chunk])
        inv = np.linalg.solve(c, np.broadcast_to(eye, c.shape))
        out[s:s + chunk] = inv[:, rows, cols]
    return out


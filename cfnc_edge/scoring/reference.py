"""The float64 reference of the Mahalanobis distance, and random problems to
hold an implementation against it: shared by the tests, `doctor`'s kernel
check and the benchmarks."""

from __future__ import annotations

import numpy as np


def random_problem(rng: np.random.Generator, batch: int, dim: int, positions: int):
    """A random test problem: (packed factor (P, T), mean (P, d), features
    (B, d, P)), float64, with W = chol(inv(C)) for a well-conditioned C and
    features drawn around the mean."""
    a = rng.normal(size=(positions, dim, dim))
    w = np.linalg.cholesky(np.linalg.inv(a @ a.transpose(0, 2, 1) / dim + np.eye(dim)))
    rows, cols = np.tril_indices(dim)
    mean = rng.normal(size=(positions, dim))
    feats = rng.normal(size=(batch, dim, positions)) + mean.T[None]
    return w[:, rows, cols], mean, feats


def reference_distance(dense: np.ndarray, mean: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """float64 || W (x - mu) || per image and position: dense (P, d, d),
    mean (P, d), feats (B, d, P) -> (B, P)."""
    delta = feats.transpose(0, 2, 1).astype(np.float64) - mean  # (B, P, d)
    return np.sqrt((np.einsum("pij,bpj->bpi", dense.astype(np.float64), delta) ** 2).sum(-1))

"""Gaussian fit and cross-fitted good-image scores.

Every good image is scored by a Gaussian that did not see it: the threshold
(scoring/threshold.py) and the compactness figure come from those scores.
Two ways, one pass over the images each:

- leave-one-out (`folds=None`, the default where it applies): one
  accumulator, and each image's distance under the Gaussian without it from
  a rank-one downdate of the fitted one (scoring/loo.py): the held-out model
  differs from the deployed one by one image, and memory is one fit's;
- folds: one accumulator per fold; their sum is the Gaussian of the bundle,
  and the sum without fold j a Gaussian that never saw fold j. Needed when
  images come in groups (the tiles of a frame must leave together) and when
  the threshold is set through a compressed factor (fp16/int8), whose
  distances the downdate does not model. Memory: folds x positions x d^2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.scoring import crossfit
from cfnc_edge.scoring.crossfit import FOLDS
from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor
from cfnc_edge.scoring.loo import downdate_beta, loo_distances

# Each fold's sums take positions x d^2 float64: the fold count is lowered to
# keep them under FOLD_MEMORY (a warning says so).
FOLD_MEMORY = 4 * 2**30

# (mean (P,d), packed factor (P,T), features (B,d,h,w), ICA thetas (B,2,3)) ->
# (image scores (B,), mean per-position distance (B,)), exactly as inference scores
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# (distances (B,h,w), ICA thetas (B,2,3)) -> anomaly maps (B,H,W), as inference maps them
MapFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# image indices -> batches of (indices, features (B,d,h,w), ICA thetas (B,2,3)) for those images
Batches = Callable[[np.ndarray], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]


def _sum(accs: list[GaussianAccumulator]) -> GaussianAccumulator:
    total = accs[0]
    for acc in accs[1:]:
        total = total + acc
    return total


@dataclass
class GaussianFit:
    mean: np.ndarray  # (P, d) float64
    factor: np.ndarray  # packed whitening factor (P, T) float64
    shrinkage: np.ndarray  # (P,) per-position shrinkage intensity (0 for "eps")
    folds: list[GaussianAccumulator]
    fold_of: np.ndarray  # (N,) fold of each image
    ica_angles: np.ndarray  # (N,) degrees, 0 without ICA
    covariance: str
    eps: float

    @property
    def leave_one_out(self) -> bool:
        """One accumulator: images are held out one at a time (loo_distances)."""
        return len(self.folds) == 1

    @classmethod
    def from_folds(cls, folds, fold_of, ica_angles, covariance: str, eps: float) -> GaussianFit:
        mean, cov, shrink = _sum(folds).finalize_with_shrinkage(eps, covariance)
        return cls(mean, whitening_factor(cov), shrink, folds, fold_of, ica_angles, covariance, eps)

    def loo_distances(self, feats: np.ndarray, derived: np.ndarray | None = None) -> np.ndarray:
        """(B,d,h,w) features of fitted images -> (B,h,w) each one's distance under the Gaussian
        without it; with `derived` (B,d,h,w), image b's copy (a synthetic defect on it) under that
        same Gaussian instead."""
        n = int(self.fold_of.size)
        beta = downdate_beta(n, self.shrinkage, self.covariance)
        return loo_distances(self.mean, self.factor, beta, n, feats, [feats if derived is None else derived])[0]

    def with_covariance(self, covariance: str, eps: float = 0.01) -> GaussianFit:
        """The same sums, another estimator (no new pass over the images)."""
        return GaussianFit.from_folds(self.folds, self.fold_of, self.ica_angles, covariance, eps)

    def tensors(self) -> dict[str, np.ndarray]:
        """The bundle's Gaussian file: mean and packed factor, stored in float32."""
        return {"mean": self.mean.astype(np.float32), "factor": self.factor.astype(np.float32)}

    def summary(self) -> dict:
        return {"covariance": self.covariance, "eps": self.eps, "positions": int(self.mean.shape[0]),
                "dim": int(self.mean.shape[1]), "images": int(self.fold_of.size),
                "folds": "leave-one-out" if self.leave_one_out else len(self.folds),
                "shrinkage_mean": float(self.shrinkage.mean()), "shrinkage_min": float(self.shrinkage.min()),
                "shrinkage_max": float(self.shrinkage.max())}


def assign_folds(n: int, folds: int, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Balanced random fold labels; never more folds than images. With `groups`
    (e.g. the frame of each tile), a group's members share a fold, so a held-out
    tile is never scored by a Gaussian fitted on its own frame's other tiles."""
    _, member_of = np.unique(np.arange(n) if groups is None else groups, return_inverse=True)
    m = int(member_of.max()) + 1 if n else 0
    k = max(1, min(folds, m))
    return np.random.default_rng(seed).permutation(np.arange(m) % k)[member_of]


def model_batches(model: CoarseToFine, images: np.ndarray, batch_size: int = 32, progress: bool = True) -> Batches:
    """Features of uint8 images (N, 3, h, w), computed batch by batch when asked for."""
    def batches(idx: np.ndarray):
        model.eval()
        for i in tqdm(range(0, len(idx), batch_size), desc="features", disable=not progress, unit="batch",
                      leave=False):
            sel = idx[i:i + batch_size]
            yield (sel, *model.run(images[sel]))
    return batches


def fit_gaussian(batches: Batches, n: int, positions: int, dim: int, covariance: str = "ledoit-wolf",
                 eps: float = 0.01, folds: int | None = None, seed: int = 0,
                 groups: np.ndarray | None = None) -> GaussianFit:
    """The Gaussian of all n images in one pass, with per-fold sums (folds over `groups` if
    given) or, with folds None and no groups, ready for leave-one-out (the module docstring)."""
    if folds is None and groups is None:
        fold_of = np.zeros(n, np.int64)
        return _accumulate(batches, n, positions, dim, fold_of, covariance, eps)
    folds = FOLDS if folds is None else folds
    fit_in = max(2, FOLD_MEMORY // (positions * dim * dim * 8))
    if folds > fit_in:
        warnings.warn(f"{folds} folds of {positions} positions x {dim} dimensions would need "
                      f"{folds * positions * dim * dim * 8 / 2**30:.1f} GiB: cross-fitting with {fit_in}",
                      RuntimeWarning, stacklevel=2)
        folds = fit_in
    return _accumulate(batches, n, positions, dim, assign_folds(n, folds, seed, groups), covariance, eps)


def _accumulate(batches: Batches, n: int, positions: int, dim: int, fold_of: np.ndarray, covariance: str,
                eps: float) -> GaussianFit:
    accs = [GaussianAccumulator(positions, dim) for _ in range(int(fold_of.max()) + 1)]
    angles = np.zeros(n)
    for sel, feats, thetas in batches(np.arange(n)):
        f = fold_of[sel]
        if accs[0].shift is None:  # one shift for all (the first batch's mean), so that fold sums add up
            shift = torch.as_tensor(feats).to(torch.float64).flatten(2).mean(0).T.contiguous()
            for acc in accs:
                acc.shift = shift
        for j, acc in enumerate(accs):
            if (f == j).any():
                acc.update(feats[f == j])
        angles[sel] = ica_angle_degrees(thetas)
    return GaussianFit.from_folds(accs, fold_of, angles, covariance, eps)


def loo_scores(batches: Batches, fit: GaussianFit, maps: MapFn) -> tuple[np.ndarray, np.ndarray]:
    """Score every image with the Gaussian without it (a leave-one-out fit).
    Returns (image scores (N,), mean per-position distance (N,))."""
    n = int(fit.fold_of.size)
    scores, means = np.empty(n), np.empty(n)
    for sel, feats, thetas in batches(np.arange(n)):
        dist = fit.loo_distances(feats)
        m = maps(dist, thetas)
        scores[sel], means[sel] = m.reshape(len(m), -1).max(1), dist.reshape(len(dist), -1).mean(1)
    return scores, means


def crossfit_scores(batches: Batches, fit: GaussianFit, score: ScoreFn) -> tuple[np.ndarray, np.ndarray]:
    """Score every image with the Gaussian of the folds it is not in.
    Returns (image scores (N,), mean per-position distance (N,))."""
    if len(fit.folds) < 2:
        raise ValueError("cross-fitting needs at least 2 folds (and 2 images)")
    total = _sum(fit.folds)

    def score_fold(j: int, idx: np.ndarray) -> np.ndarray:  # (len(idx), 2): score, mean distance
        mean, factor = heldout_gaussian(fit, j, total)
        return np.concatenate([np.stack(score(mean, factor, feats, thetas), 1) for _, feats, thetas in batches(idx)])

    both = crossfit.crossfit_scores([np.flatnonzero(fit.fold_of == j) for j in range(len(fit.folds))], score_fold)
    return both[:, 0], both[:, 1]


def heldout_gaussian(fit: GaussianFit, j: int, total: GaussianAccumulator) -> tuple[np.ndarray, np.ndarray]:
    """(mean, packed factor) of the Gaussian of every fold but j; `total` is the sum of all folds."""
    mean, cov = (total - fit.folds[j]).finalize(fit.eps, fit.covariance)
    return mean, whitening_factor(cov)


def heldout_gaussians(fit: GaussianFit):
    """For each fold: (its image indices, mean, packed factor of the Gaussian without it)."""
    if len(fit.folds) < 2:
        raise ValueError("cross-fitting needs at least 2 folds (and 2 images)")
    total = _sum(fit.folds)
    for j in range(len(fit.folds)):
        yield (np.flatnonzero(fit.fold_of == j), *heldout_gaussian(fit, j, total))


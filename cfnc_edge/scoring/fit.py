"""Gaussian fit, cross-fitted good-image scores and the bundle write.

One pass over the good images fills one accumulator per fold; their sum is
the Gaussian of the bundle, and the sum without fold j is a Gaussian that
never saw fold j's images. Scoring every fold with its own held-out Gaussian
gives a score for every good image from a model that did not see it: the
threshold (scoring/threshold.py) and the compactness figure come from those.
Memory stays flat in the number of images (folds x positions x d^2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from cfnc_edge.bundle import GAUSSIAN, WEIGHTS, Bundle
from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.scoring import crossfit
from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor

# (mean (P,d), packed factor (P,T), features (B,d,h,w), ICA thetas (B,2,3)) ->
# (image scores (B,), mean per-position distance (B,)), exactly as inference scores
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
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

    @classmethod
    def from_folds(cls, folds, fold_of, ica_angles, covariance: str, eps: float) -> GaussianFit:
        mean, cov, shrink = _sum(folds).finalize_with_shrinkage(eps, covariance)
        return cls(mean, whitening_factor(cov), shrink, folds, fold_of, ica_angles, covariance, eps)

    def with_covariance(self, covariance: str, eps: float = 0.01) -> GaussianFit:
        """The same sums, another estimator (no new pass over the images)."""
        return GaussianFit.from_folds(self.folds, self.fold_of, self.ica_angles, covariance, eps)

    def summary(self) -> dict:
        return {"covariance": self.covariance, "eps": self.eps, "positions": int(self.mean.shape[0]),
                "dim": int(self.mean.shape[1]), "images": int(self.fold_of.size), "folds": len(self.folds),
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
                 eps: float = 0.01, folds: int = 5, seed: int = 0, groups: np.ndarray | None = None) -> GaussianFit:
    """The Gaussian of all n images, and the per-fold sums, in one pass (folds over `groups` if given)."""
    fold_of = assign_folds(n, folds, seed, groups)
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


def write_model(bundle: Bundle, model: CoarseToFine, fit: GaussianFit, **manifest) -> None:
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    bundle.write(
        {WEIGHTS: Bundle.tensor_bytes(weights),
         GAUSSIAN: Bundle.tensor_bytes({"mean": fit.mean.astype(np.float32),
                                        "factor": fit.factor.astype(np.float32)})},
        model=model.cfg.to_dict(), scorer={"kind": "gaussian"}, gaussian=fit.summary(), **manifest,
    )

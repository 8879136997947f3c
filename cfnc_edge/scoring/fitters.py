"""The three scorers fitted on good images, each with every image's held-out score.

- "gaussian": the per-position Gaussian (scoring/gaussian_fit.py), each image scored
  by the Gaussian without it (leave-one-out, or without its fold);
- "knn": the memory bank (scoring/memory_bank.py), each image scored against
  the bank less its own part's rows;
- "combined": both, fused (scoring/combined_fit.py).

Held-out images are scored by inference's own CPU steps (`Inference`), so the
threshold `finish` sets from them (scoring/fitted.py) holds for deployed frames.
"""

from __future__ import annotations

import time

import numpy as np

from cfnc_edge.bundle import BANK, GAUSSIAN
from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.scoring import crossfit
from cfnc_edge.scoring.combined_fit import fit_combined
from cfnc_edge.scoring.crossfit import FOLDS
from cfnc_edge.scoring.gaussian_fit import ScoreFn, crossfit_scores, fit_gaussian, loo_scores, model_batches
from cfnc_edge.scoring.fitted import FittedScorer
from cfnc_edge.scoring.inference import Inference
from cfnc_edge.scoring.memory_bank import MAX_BANK, fit_memory_bank, split_parts


def heldout_score_fn(inference: Inference, image_size: tuple[int, int], factor_precision: str = "fp32") -> ScoreFn:
    """Score features exactly as CPU inference does (float32 Gaussian as in the
    bundle, the factor stored in `factor_precision`)."""
    def score(mean, factor, feats, thetas):
        dist = inference.mahalanobis(mean, factor, factor_precision)(feats)
        return inference.image_scores(dist, thetas, image_size), dist.reshape(len(dist), -1).mean(1)
    return score


def fit_gaussian_scorer(model: CoarseToFine, images: np.ndarray, inference: Inference, covariance: str = "ledoit-wolf",
                        eps: float = 0.01, folds: int | None = None, batch_size: int = 32, progress: bool = True,
                        factor_precision: str = "fp32", groups: np.ndarray | None = None) -> FittedScorer:
    """The Gaussian of all good images, each image scored with the factor in the precision
    the runtime will store it in (`groups`: the frame of each tile, held out together)."""
    batches = model_batches(model, images, batch_size, progress)
    if folds is None and factor_precision != "fp32":  # the threshold must see the compressed factor's distances
        folds = FOLDS
    fit = fit_gaussian(batches, len(images), model.cfg.positions, model.cfg.feature_channels, covariance, eps, folds,
                       groups=groups)
    size = model.cfg.input_size
    if fit.leave_one_out:
        scores, dists = loo_scores(batches, fit, lambda d, t: inference.maps(d, t, size))
    else:
        scores, dists = crossfit_scores(batches, fit, heldout_score_fn(inference, size, factor_precision))
    return FittedScorer(files={GAUSSIAN: fit.tensors()}, manifest={"scorer": {"kind": "gaussian"},
                                                                  "gaussian": fit.summary()},
                        heldout=scores, angles=fit.ica_angles, heldout_distance=float(dists.mean()))


def fit_knn_scorer(model: CoarseToFine, images: np.ndarray, inference: Inference, bank_size: float = 0.1,
                   max_bank: int | None = MAX_BANK, seed: int = 0, batch_size: int = 32, progress: bool = True,
                   groups: np.ndarray | None = None) -> FittedScorer:
    """The memory bank of the good images, each image scored against the deployed bank
    less its part's rows (a part: one image, or with `groups` one frame's tiles)."""
    tensors, info = fit_memory_bank(model, images, bank_size, seed, max_bank, batch_size=batch_size, groups=groups,
                                    progress=progress)
    parts = split_parts(len(images), info["part_images"], info["seed"], groups)
    rows = crossfit.part_rows(tensors["part"], len(parts))
    part_of = crossfit.part_of(parts, len(images))
    nn = inference.nearest(tensors["bank"], tensors["center"])
    size = model.cfg.input_size
    scores, angles = np.empty(len(images)), np.zeros(len(images))
    for s in range(0, len(images), batch_size):
        feats, thetas = model.run(images[s:s + batch_size])
        dist = np.concatenate([nn(f[None], skip=rows[part_of[s + i]]) for i, f in enumerate(feats)])
        scores[s:s + len(dist)] = inference.image_scores(dist, thetas, size)
        angles[s:s + len(dist)] = ica_angle_degrees(thetas)
    return FittedScorer(files={BANK: tensors}, manifest={"scorer": info}, heldout=scores, angles=angles,
                        threshold={"method": "cross-fit", "folds": len(parts)})


def fit_scorer(scorer: str, model: CoarseToFine, images: np.ndarray, inference: Inference, *,
               groups: np.ndarray | None = None, covariance: str = "ledoit-wolf", eps: float = 0.01,
               folds: int | None = None, bank_size: float = 0.1, max_bank: int | None = MAX_BANK, seed: int = 0,
               batch_size: int = 32, progress: bool = True, factor_precision: str = "fp32",
               fusion_weight: float = 0.5) -> FittedScorer:
    """Fit `scorer` ("gaussian", "knn" or "combined") on uint8 good images (N, 3, h, w),
    timed; each fitter takes the options that concern it."""
    t0 = time.perf_counter()
    if scorer == "knn":
        fitted = fit_knn_scorer(model, images, inference, bank_size, max_bank, seed, batch_size, progress, groups)
    elif scorer == "combined":
        fitted = fit_combined(model, images, inference, covariance, eps, folds, bank_size, max_bank, seed,
                              batch_size, progress, groups, fusion_weight)
    else:
        fitted = fit_gaussian_scorer(model, images, inference, covariance, eps, folds, batch_size, progress,
                                     factor_precision, groups)
    fitted.seconds = time.perf_counter() - t0
    return fitted

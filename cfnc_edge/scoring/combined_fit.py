"""Fitting the combined scorer: the per-position Gaussian and the memory bank
on one model's two heads, each normalised by its own held-out good scores, summed.

Neither scorer wins on every dataset (the Gaussian on thin cracks and small
defects, the bank on posed parts and large areas; benchmarks/results/
combined-magnetic-tile.md). The fused distance is

    D_gauss / m_G + D_bank / m_K

where m is the mean image score (map maximum) that cross-fitted good
training images get under each scorer alone: each scorer is put in units of
"a typical good part's worst patch", so neither dominates by its scale, and
a patch that either scorer finds unusual stands out. Only good images set
these constants; the mean of n scores is steadier than a threshold (on 50
images the 1% threshold is their maximum), and a sum of non-negative
distances keeps 0 for a perfect match, as the normalised score expects.
The threshold is then set for the target false-alarm rate from the
cross-fitted fused scores, as for the single scorers.

Three passes over the good images, each one forward pass giving both heads:
the Gaussian's sums, the bank part by part, then every image scored by the
Gaussian without it (leave-one-out, or without its fold for tiles) and the
bank without its own rows.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from cfnc_edge.bundle import BANK, GAUSSIAN
from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.model.combined_head import split_combined
from cfnc_edge.scoring.crossfit import part_of as crossfit_part_of
from cfnc_edge.scoring.crossfit import part_rows
from cfnc_edge.scoring.gaussian_fit import fit_gaussian, heldout_gaussians
from cfnc_edge.scoring.fitted import FittedScorer
from cfnc_edge.scoring.inference import Inference
from cfnc_edge.scoring.memory_bank import MAX_BANK, fit_bank, split_parts

# what the Gaussian's distances, then the bank's, are divided by: the scorer tensor "fusion"
FUSION_FIELDS = ("gaussian_scale", "bank_scale")


def _heads(model: CoarseToFine, images: np.ndarray, batch_size: int):
    """idx -> batches of (indices, projection (B,d,h,w), pooled (B,C,sh,sw), thetas), one forward pass each."""
    dim, pooled_shape = model.cfg.feature_dim, model.tap_shapes[1]

    def run(idx: np.ndarray):
        for i in range(0, len(idx), batch_size):
            sel = idx[i:i + batch_size]
            feats, thetas = model.run(images[sel])
            proj, pooled = split_combined(feats, dim, pooled_shape)
            yield sel, np.ascontiguousarray(proj), np.ascontiguousarray(pooled), thetas
    return run


def fit_combined(model: CoarseToFine, images: np.ndarray, inference: Inference, covariance: str = "ledoit-wolf",
                 eps: float = 0.01, folds: int | None = None, bank_size: float = 0.1, max_bank: int | None = MAX_BANK,
                 seed: int = 0, batch_size: int = 32, progress: bool = True, groups: np.ndarray | None = None,
                 weight: float = 0.5) -> FittedScorer:
    """uint8 good images -> the Gaussian and the bank tensors with the fusion constants, and the
    cross-fitted fused scores (held-out mean distance: the Gaussian's compactness figure).
    `weight`: the Gaussian's share w of the fused map 2 w G / m_G + 2 (1 - w) K / m_K (0.5: equal
    units; `--recipe auto` chooses it per dataset, selection/evaluate.py)."""
    if not 0 < weight < 1:
        raise ValueError(f"the fusion weight must be in (0, 1), got {weight}")
    model.eval()
    heads = _heads(model, images, batch_size)
    n, size = len(images), model.cfg.input_size
    (h, w), (sh, sw) = model.tap_shapes[0], model.tap_shapes[1]
    fit = fit_gaussian(lambda idx: ((s, p, t) for s, p, _, t in heads(idx)), n, h * w, model.cfg.feature_dim,
                       covariance, eps, folds, seed, groups)

    def part_patches(idx):
        x = np.concatenate([k for _, _, k, _ in heads(idx)])
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    tensors, info = fit_bank(part_patches, n, sh * sw, bank_size, seed, max_bank, progress=progress, groups=groups)

    parts = split_parts(n, info["part_images"], info["seed"], groups)
    part_of = crossfit_part_of(parts, n)
    rows = part_rows(tensors["part"], len(parts))  # part j held out: the deployed bank less these rows
    nn = inference.nearest(tensors["bank"], tensors["center"])
    gauss, bank = np.empty((n, h, w), np.float32), np.empty((n, sh, sw), np.float32)
    thetas = np.empty((n, 2, 3), np.float32)
    # leave-one-out: all images in one pass under the fitted Gaussian; folds: a pass per fold
    held = ([(np.arange(n), None)] if fit.leave_one_out else
            ((idx, inference.mahalanobis(mean, factor, "fp32")) for idx, mean, factor in heldout_gaussians(fit)))
    for idx, maha in tqdm(held, total=1 if fit.leave_one_out else len(fit.folds), desc="cross-fit",
                          disable=not progress, unit="pass", leave=False):
        for sel, proj, pooled, th in heads(idx):
            gauss[sel], thetas[sel] = fit.loo_distances(proj) if maha is None else maha(proj), th
            for j in np.unique(part_of[sel]):
                mine = part_of[sel] == j
                bank[sel[mine]] = nn(pooled[mine], skip=rows[j])
    # each scorer alone, as inference maps it (the bank's distances resized onto the Gaussian's grid as fused)
    scores = inference.image_scores
    fusion = np.array([scores(gauss, thetas, size).mean() / (2 * weight),
                       scores(inference.fuse(np.zeros_like(gauss), bank, np.ones(2)), thetas, size).mean()
                       / (2 * (1 - weight))])
    fused = scores(inference.fuse(gauss, bank, fusion), thetas, size)
    tensors = {**tensors, "fusion": fusion, "pooled_shape": np.array([sh, sw], np.int64)}
    info = {"kind": "combined", "rule": "sum of each distance / mean held-out good image score, weighted",
            "weight": weight,
            "fusion": dict(zip(FUSION_FIELDS, map(float, fusion))), "bank": info}
    return FittedScorer(files={GAUSSIAN: fit.tensors(), BANK: tensors},
                        manifest={"scorer": info, "gaussian": fit.summary()}, heldout=fused, angles=ica_angle_degrees(thetas), heldout_distance=float(gauss.mean()),
                        threshold={"method": "cross-fit"})

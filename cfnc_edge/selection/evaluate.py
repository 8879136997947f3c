"""Score one candidate's features on good images and their synthetic defects.

One forward pass per image (good, and its defective copy), both feature
heads at once. Each good image and its defective copy are scored by models
that never saw that good image: the Gaussian of the other folds, the bank
less the image's own rows, exactly as the threshold's cross-fit does. So a
scorer that merely remembers its training images gains nothing here.

Scorers, from the same two distance maps: the Gaussian alone, the bank
alone, and their fusion w * G / m_G + (1 - w) * K / m_K (x 2, so w = 0.5 is
scoring/combined_fit.py's rule) for each weight in FUSION_WEIGHTS, m being each
scorer's mean held-out good image score. Metrics: image AUROC (good against
defective copies, the maximum of the map as in inference) and PRO of the
defect masks over the maps of both sets (at half resolution: _half).
"""

from __future__ import annotations

import time

import numpy as np

from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.model.combined_head import split_combined
from cfnc_edge.report.metrics import image_auroc, pro_score
from cfnc_edge.runtime.combined import fuse
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.scoring.crossfit import part_rows
from cfnc_edge.scoring.gaussian_fit import fit_gaussian
from cfnc_edge.scoring.memory_bank import fit_bank, split_parts

FUSION_WEIGHTS = (0.25, 0.5, 0.75)  # the Gaussian's share of the fused map
SELECTION_MAX_BANK = 8192  # rows: PatchCore loses ~0.1 AUROC from a 10% to a 1% coreset


def _features(model: CoarseToFine, images: np.ndarray, batch: int = 16):
    """uint8 (N,3,h,w) -> (projection (N,d,h',w'), pooled (N,C,sh,sw), thetas (N,2,3)), float32."""
    proj, pooled, thetas = [], [], []
    for i in range(0, len(images), batch):
        f, t = model.run(images[i:i + batch])
        p, k = split_combined(f, model.cfg.feature_dim, model.tap_shapes[1])
        proj.append(np.ascontiguousarray(p))
        pooled.append(np.ascontiguousarray(k))
        thetas.append(t)
    return np.concatenate(proj), np.concatenate(pooled), np.concatenate(thetas)


def _gaussian_distances(good: np.ndarray, queries: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mahalanobis distances (N,h,w) of the good images, each under the Gaussian of the other
    good images (exact leave-one-out, scoring/loo.py), and of the queries: paired (query i made
    from good image i) under the same Gaussian as image i, else under the Gaussian of all."""
    n, d, h, w = good.shape
    eye = np.broadcast_to(np.eye(2, 3, dtype=np.float32), (n, 2, 3))  # the features are aligned already

    def batches(idx):
        for s in range(0, len(idx), 16):
            yield idx[s:s + 16], good[idx[s:s + 16]], eye[idx[s:s + 16]]
    fit = fit_gaussian(batches, n, h * w, d)  # folds None: leave-one-out
    dist_good = np.concatenate([fit.loo_distances(good[s:s + 16]) for s in range(0, n, 16)])
    if paired:
        dist_q = np.concatenate([fit.loo_distances(good[s:s + 16], queries[s:s + 16]) for s in range(0, n, 16)])
    else:
        dist_q = CpuMahalanobis(fit.mean, fit.factor)(queries)
    return dist_good, dist_q


def _bank_distances(good: np.ndarray, queries: np.ndarray, paired: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances (N,sh,sw) of the good images under the bank of all good images
    less the image's own rows, and of the queries (paired: less their good image's rows; else the whole bank)."""
    n, c, sh, sw = good.shape

    def patches(idx):
        return good[idx].transpose(0, 2, 3, 1).reshape(-1, c)
    tensors, info = fit_bank(patches, n, sh * sw, 0.1, seed, SELECTION_MAX_BANK, part_images=1, progress=False)
    parts = split_parts(n, info["part_images"], info["seed"])
    rows = part_rows(tensors["part"], len(parts))
    nn = CpuNearestNeighbour(tensors["bank"], tensors["center"])
    dist_good = np.empty((n, sh, sw), np.float32)
    for j, idx in enumerate(parts):
        dist_good[idx] = nn(good[idx], skip=rows[j])
    if not paired:
        return dist_good, np.concatenate([nn(queries[s:s + 16]) for s in range(0, len(queries), 16)])
    dist_q = np.empty((n, sh, sw), np.float32)
    for j, idx in enumerate(parts):
        dist_q[idx] = nn(queries[idx], skip=rows[j])
    return dist_good, dist_q


def _half(maps: np.ndarray) -> np.ndarray:
    """Maps at half resolution (2x2 means; odd edges dropped): PRO sorts every pixel, and
    ranking candidates does not need 4x the pixels (a defect pixel marks its 2x2 cell)."""
    n, h, w = maps.shape
    return maps[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))


def _row(scorer: str, maps: np.ndarray, labels: np.ndarray, masks: np.ndarray, prefix: str, **extra) -> dict:
    scores = maps.reshape(len(maps), -1).max(1)
    cells = _half(masks.astype(np.float32)) > 0
    return {"scorer": scorer, **extra, f"{prefix}_image_auroc": image_auroc(scores, labels),
            f"{prefix}_pro": pro_score(_half(maps), cells)}


def _scorer_rows(model: CoarseToFine, good: np.ndarray, queries: np.ndarray, labels: np.ndarray,
                 masks: np.ndarray, paired: bool, gaussian: bool, seed: int, prefix: str) -> list[dict]:
    """One row per scorer: image AUROC and PRO over the evaluated maps, with `labels` and `masks`
    for them. paired: the queries are the good images' defective copies, and the evaluated maps
    are the good images' held-out maps, then the copies'; else they are the queries' (a real
    test set) under models fitted on all the good images. The fusion constants come from the
    good images' held-out maps, as the deployed fit sets them (scoring/combined_fit.py)."""
    model.eval()
    size = model.cfg.input_size
    proj_g, pooled_g, th_g = _features(model, good)
    proj_q, pooled_q, th_q = _features(model, queries)

    def maps(dist_good, dist_q):  # (good images' held-out maps, queries' maps)
        return anomaly_maps(dist_good, th_g, size), anomaly_maps(dist_q, th_q, size)

    def evaluated(good_maps, q_maps):
        return np.concatenate([good_maps, q_maps]) if paired else q_maps
    k_good, k_q = _bank_distances(pooled_g, pooled_q, paired, seed)
    rows = [_row("knn", evaluated(*maps(k_good, k_q)), labels, masks, prefix)]
    if gaussian:
        g_good, g_q = _gaussian_distances(proj_g, proj_q, paired)
        g_good_maps, g_q_maps = maps(g_good, g_q)
        # the bank's map on the Gaussian's grid, as the combined scorer fuses it (runtime/combined.py)
        k_good_maps, k_q_maps = maps(fuse(np.zeros_like(g_good), k_good, np.ones(2)),
                                     fuse(np.zeros_like(g_q), k_q, np.ones(2)))
        g_maps, k_maps = evaluated(g_good_maps, g_q_maps), evaluated(k_good_maps, k_q_maps)
        rows.append(_row("gaussian", g_maps, labels, masks, prefix))
        m_g = g_good_maps.reshape(len(good), -1).max(1).mean()
        m_k = k_good_maps.reshape(len(good), -1).max(1).mean()
        for w in FUSION_WEIGHTS:
            rows.append(_row("combined", 2 * w / m_g * g_maps + 2 * (1 - w) / m_k * k_maps, labels, masks, prefix,
                             weight=w))
    return rows


def score_candidate(model: CoarseToFine, good: np.ndarray, bad: np.ndarray, masks: np.ndarray,
                    gaussian: bool = True, seed: int = 0) -> list[dict]:
    """uint8 good images (N,3,h,w), their defective copies and the defects' masks (N,h,w) ->
    one row per scorer: scorer, weight (fusion), synthetic image AUROC and PRO, seconds."""
    t0 = time.perf_counter()
    labels = np.r_[np.zeros(len(good), bool), np.ones(len(bad), bool)]
    rows = _scorer_rows(model, good, bad, labels, np.concatenate([np.zeros_like(masks), masks]), paired=True,
                        gaussian=gaussian, seed=seed, prefix="synthetic")
    seconds = round(time.perf_counter() - t0, 1)
    return [{**r, "seconds": seconds} for r in rows]


def score_on_test(model: CoarseToFine, good: np.ndarray, test: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                  gaussian: bool = True, seed: int = 0) -> list[dict]:
    """The same rows on a real labelled test set (uint8 (M,3,h,w), labels (M,), masks (M,h,w)), with
    models fitted on `good`: how well the synthetic scores predict real ones (`compare`, benchmarks)."""
    return _scorer_rows(model, good, test, np.asarray(labels, bool), masks, paired=False, gaussian=gaussian,
                        seed=seed, prefix="test")

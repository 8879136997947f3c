"""Image AUROC, pixel AUROC, PRO (per-region overlap), and what a threshold does.

AUROC and the ROC curve come from scikit-learn. PRO follows Bergmann et al. (MVTec AD): for
every threshold, the mean over all ground-truth connected components of the
fraction of the component above threshold, plotted against the false
positive rate on defect-free pixels, integrated up to FPR 0.3 and divided by
0.3. It is computed exactly in one sort of all pixels: each defect pixel
carries the weight 1 / (its component's size * number of components), so the
running sum of weights down the sorted scores is the PRO curve.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score, roc_curve


def image_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(roc_auc_score(np.asarray(labels, bool), np.asarray(scores)))


def operating_point(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """What `threshold` does on a labelled test set, beside the best a threshold could do.

    An image is flagged when its score is above the threshold, as the Inspector
    decides. good_flagged and defects_caught are the shares of the good_images
    good and the defective_images defective images flagged. The oracle is the threshold chosen with the labels:
    the highest catch rate (oracle_caught) among the thresholds whose false-alarm
    share on these good images is at most good_flagged; it flags the scores of
    oracle_threshold or more (None where the best at that level is to flag
    nothing), with a false-alarm share of oracle_good_flagged; oracle_gap is
    oracle_caught - defects_caught (>= 0).
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    flagged = scores > threshold
    good_flagged = float(flagged[~labels].mean())
    fpr, tpr, thresholds = roc_curve(labels, scores)
    # half a good image of slack: the two shares are counts over the same total, rounded apart
    level = np.flatnonzero(fpr <= good_flagged + 0.5 / (~labels).sum())
    best = level[np.argmax(tpr[level])]  # the first of equal catch rates: the fewest false alarms
    return {"threshold": float(threshold), "good_images": int((~labels).sum()), "defective_images": int(labels.sum()),
            "good_flagged": good_flagged, "defects_caught": float(flagged[labels].mean()),
            "oracle_caught": float(tpr[best]), "oracle_gap": float(tpr[best] - flagged[labels].mean()),
            "oracle_good_flagged": float(fpr[best]),
            "oracle_threshold": float(thresholds[best]) if np.isfinite(thresholds[best]) else None}


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    masks = np.asarray(masks, bool)
    if not masks.any() or masks.all():
        return float("nan")
    return float(roc_auc_score(masks.ravel(), np.asarray(maps).ravel()))


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at every distinct threshold, from the highest score down."""
    maps = np.asarray(maps, np.float64)
    masks = np.asarray(masks, bool)
    weights_pro = np.zeros(maps.shape, np.float64)
    regions = []
    eight = np.ones((3, 3), bool)
    for i, m in enumerate(masks):
        labels, n = ndimage.label(m, structure=eight)
        if n:
            sizes = np.bincount(labels.ravel())
            regions.append((i, labels, sizes))
    n_regions = sum(len(s) - 1 for _, _, s in regions)
    n_normal = int((~masks).sum())
    if n_regions == 0 or n_normal == 0:
        raise ValueError("PRO needs at least one defect region and one defect-free pixel")
    for i, labels, sizes in regions:
        w = np.where(labels > 0, 1.0 / (sizes[labels] * n_regions), 0.0)
        weights_pro[i] = w
    order = np.argsort(-maps.ravel(), kind="stable")
    s = maps.ravel()[order]
    pro = np.cumsum(weights_pro.ravel()[order])
    fpr = np.cumsum((~masks).ravel()[order]) / n_normal
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    return np.r_[0.0, fpr[last_of_tie]], np.r_[0.0, pro[last_of_tie]]


def pro_score(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve for FPR in [0, fpr_limit]."""
    fpr, pro = pro_curve(maps, masks)
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:
        j = np.searchsorted(fpr, fpr_limit)  # first point past the limit
        y_lim = pro[j - 1] + (pro[j] - pro[j - 1]) * (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x, y = np.r_[x, fpr_limit], np.r_[y, y_lim]
    return float(np.trapezoid(y, x) / fpr_limit)

"""Training evidence as a picture: loss, collapse check, ICA angles, and the
good images' scores against the threshold, written as training.png next to
the bundle.

Only what the bundle has to show is drawn: a bundle that trained nothing (the
ImageNet backbone as it is) gets no loss or collapse panels, and ICA angles
that are all the same (no alignment, or one that never turned) no histogram;
the footer says so in words.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cfnc_edge.report.panels import COLOURS, H, M, RED, W, panel, text, to_px

TRAINING_PLOT = "training.png"


def _lines(title: str, x: np.ndarray, series: dict[str, np.ndarray], from_zero: bool = False) -> np.ndarray:
    img = panel(title)
    ys = np.concatenate(list(series.values()))
    lo, hi = (0.0 if from_zero else float(ys.min())), float(ys.max())
    x0, x1 = float(x.min()), float(x.max())
    for i, (name, y) in enumerate(series.items()):
        px = to_px(x, x0, x1 if x1 > x0 else x0 + 1, M, W - 10)
        py = to_px(y, lo, hi, H - M, 20)
        pts = np.stack([px, py], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, COLOURS[i % 3], 2, cv2.LINE_AA)
        text(img, name, (M + 6, 36 + 14 * i), 0.4, COLOURS[i % 3])
    for v, yy in ((hi, 26), (lo, H - M)):
        text(img, f"{v:.3g}", (2, yy), 0.33)
    text(img, f"step {x0:.0f} .. {x1:.0f}", (M, H - M + 16))
    return img


def _histogram(title: str, summary: dict) -> np.ndarray:
    img = panel(title)
    counts = np.asarray(summary["histogram"], float)
    w = (W - 10 - M) / len(counts)
    for i, c in enumerate(counts):
        top = int(to_px(c, 0, counts.max() or 1, H - M, 24))
        cv2.rectangle(img, (int(M + i * w) + 1, top), (int(M + (i + 1) * w) - 1, H - M), COLOURS[0], -1)
    text(img, f"{summary['min']:.2f} .. {summary['max']:.2f} deg, std {summary['std']:.2f}", (M, H - M + 16))
    return img


def _good_scores(thr: dict) -> np.ndarray:
    """The good images' scores the threshold was set from (mean +- std and the
    maximum: what the threshold record keeps of them) on one axis with the threshold."""
    img = panel(f"good scores the threshold came from ({thr['n']} images)" if "n" in thr else "good scores")
    mean, std, top, value = thr["good_mean"], thr["good_std"], thr["good_max"], thr["value"]
    hi = 1.15 * max(top, value)

    def px(v: float) -> int:
        return int(round(float(to_px(v, 0.0, hi, M, W - 10))))

    y = (20 + H - M) // 2
    cv2.rectangle(img, (px(max(mean - std, 0.0)), y - 10), (px(mean + std), y + 10), COLOURS[0], -1)
    cv2.line(img, (px(mean), y - 18), (px(mean), y + 18), (0, 0, 0), 2)
    cv2.drawMarker(img, (px(top), y), COLOURS[1], cv2.MARKER_DIAMOND, 12, 2)
    cv2.line(img, (px(value), 24), (px(value), H - M), RED, 2)
    text(img, "mean +- std", (px(max(mean - std, 0.0)), y - 24), 0.38, COLOURS[0])
    text(img, f"max {top:.3g}", (px(top) - 60, y + 34), 0.38, COLOURS[1])  # left of the threshold line
    label_x = px(value) + 4 if px(value) < W // 2 else px(value) - 96  # beside the line, inside the panel
    text(img, f"threshold {value:.3g}", (label_x, 36), 0.38, RED)
    text(img, "0", (M - 4, H - M + 16), 0.33)
    text(img, f"{hi:.3g}", (W - 40, H - M + 16), 0.33)
    return img


def has_training_evidence(manifest: dict) -> bool:
    """Bundles written before the training evidence (compactness, threshold record) have none to show."""
    return "compactness" in manifest and "threshold" in manifest


def training_state(manifest: dict) -> str:
    """'trained' (a history was recorded), 'untrained' (the configuration trains
    nothing: the backbone's ImageNet features as they are) or 'unrecorded' (it
    trains, but the bundle kept no history)."""
    if manifest.get("history"):
        return "trained"
    model, train = manifest.get("model", {}), manifest.get("train", {})
    return "unrecorded" if model.get("ica") or train.get("noncontrastive") else "untrained"


def angles_spread(summary: dict) -> bool:
    """ICA angles that are all the same (no alignment module, or one that never
    turned) have no distribution to show."""
    return summary["max"] > summary["min"]


def plot_training(manifest: dict, path: Path) -> Path:
    """Loss curves, encoder std (collapse shows as 0), ICA angle histogram and the
    good images' scores against the threshold of a bundle manifest, as one PNG:
    each panel only where the bundle has something to show in it."""
    hist = manifest.get("history") or []
    step = np.array([h["step"] for h in hist], float)
    losses = {k: np.array([h[k] for h in hist]) for k in ("fine", "ica") if hist and k in hist[0]}
    std = {"encoder std x sqrt(width)": np.array([h["encoder_std"] for h in hist])} if hist and "encoder_std" in hist[0] else {}
    compact, thr = manifest["compactness"], manifest["threshold"]
    panels = []
    if losses:
        panels.append(_lines("training loss", step, losses))
    if std:
        panels.append(_lines("collapse check (0 = collapsed)", step, std, from_zero=True))
    if angles_spread(compact["ica_angles"]):
        panels.append(_histogram("ICA angles of the good images", compact["ica_angles"]))
    if "good_max" in thr:  # threshold records from before the good-score summary have none
        panels.append(_good_scores(thr))
    state = {"trained": f"trained {hist[-1]['step'] if hist else 0} steps",
             "untrained": "no training: the features are the backbone's ImageNet features",
             "unrecorded": "no training history recorded in this bundle"}[training_state(manifest)]
    if not angles_spread(compact["ica_angles"]):
        state += (f"; ICA angles all {compact['ica_angles']['min']:.2f} deg" if manifest.get("model", {}).get("ica")
                  else "; no coarse alignment (ICA)")
    promise = ("set by hand" if thr.get("user_set") else
               f"expected false alarms {100 * thr['expected_fpr']:.1f}% +- {100 * thr['fpr_std']:.1f}%")
    # a Gaussian records the mean per-position distance, a memory bank the mean image score
    held_out = (f"held-out mean Mahalanobis distance {compact['heldout_mean_distance']:.3f}"
                if "heldout_mean_distance" in compact else f"held-out mean score {compact['heldout_mean_score']:.3f}")
    # the threshold training set: eval or infer may be run with another one (--threshold)
    notes = [state, f"compactness: {held_out}", f"training threshold {thr['value']:.3f} ({promise})"]
    width = max(W * len(panels), 2 * W)  # the notes need two panels' width
    row = np.full((H if panels else 0, width, 3), 255, np.uint8)
    if panels:
        row[:, :W * len(panels)] = np.hstack(panels)
    footer = np.full((10 + 20 * len(notes), width, 3), 255, np.uint8)
    for i, note in enumerate(notes):
        text(footer, note, (10, 20 + 20 * i), 0.45)
    cv2.imwrite(str(path), np.vstack([row, footer]))
    return path

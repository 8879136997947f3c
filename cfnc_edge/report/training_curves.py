"""Training evidence as a picture: loss, collapse check, ICA angles, compactness.

Drawn with OpenCV (already a dependency) so the plot needs no plotting
library: three panels side by side, written as training.png next to the bundle.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TRAINING_PLOT = "training.png"
_W, _H, _M = 360, 260, 40  # panel width, height, margin
_COLOURS = [(200, 80, 0), (0, 140, 255), (40, 160, 40)]


def angle_summary(angles: np.ndarray, bins: int = 12) -> dict:
    """The distribution of ICA rotation angles (degrees) over the fitted images."""
    a = np.asarray(angles, np.float64)
    lo, hi = float(a.min()), float(a.max())
    counts, edges = np.histogram(a, bins=bins, range=(lo, hi if hi > lo else lo + 1e-3))
    return {"mean": float(a.mean()), "std": float(a.std()), "min": lo, "max": hi,
            "p5": float(np.percentile(a, 5)), "p50": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "histogram": counts.tolist(), "edges": [round(float(e), 4) for e in edges]}


def _panel(title: str) -> np.ndarray:
    img = np.full((_H, _W, 3), 255, np.uint8)
    cv2.rectangle(img, (_M, 20), (_W - 10, _H - _M), (0, 0, 0), 1)
    cv2.putText(img, title, (_M, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _to_px(v, lo, hi, a, b):
    return a + (np.asarray(v, float) - lo) / (hi - lo if hi > lo else 1.0) * (b - a)


def _lines(title: str, x: np.ndarray, series: dict[str, np.ndarray], from_zero: bool = False) -> np.ndarray:
    img = _panel(title)
    if len(x) == 0 or not series:
        cv2.putText(img, "no training", (_M + 10, _H // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        return img
    ys = np.concatenate(list(series.values()))
    lo, hi = (0.0 if from_zero else float(ys.min())), float(ys.max())
    x0, x1 = float(x.min()), float(x.max())
    for i, (name, y) in enumerate(series.items()):
        px = _to_px(x, x0, x1 if x1 > x0 else x0 + 1, _M, _W - 10)
        py = _to_px(y, lo, hi, _H - _M, 20)
        pts = np.stack([px, py], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, _COLOURS[i % 3], 2, cv2.LINE_AA)
        cv2.putText(img, name, (_M + 6, 36 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _COLOURS[i % 3], 1, cv2.LINE_AA)
    for v, yy in ((hi, 26), (lo, _H - _M)):
        cv2.putText(img, f"{v:.3g}", (2, yy), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {x0:.0f} .. {x1:.0f}", (_M, _H - _M + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1)
    return img


def _histogram(title: str, summary: dict) -> np.ndarray:
    img = _panel(title)
    counts = np.asarray(summary["histogram"], float)
    w = (_W - 10 - _M) / len(counts)
    for i, c in enumerate(counts):
        top = int(_to_px(c, 0, counts.max() or 1, _H - _M, 24))
        cv2.rectangle(img, (int(_M + i * w) + 1, top), (int(_M + (i + 1) * w) - 1, _H - _M), _COLOURS[0], -1)
    cv2.putText(img, f"{summary['min']:.2f} .. {summary['max']:.2f} deg, std {summary['std']:.2f}",
                (_M, _H - _M + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def has_training_evidence(manifest: dict) -> bool:
    """Bundles written before the training evidence (compactness, threshold record) have none to show."""
    return "compactness" in manifest and "threshold" in manifest


def plot_training(manifest: dict, path: Path) -> Path:
    """Loss curves, encoder std (collapse shows as 0), ICA angle histogram and the
    compactness figure of a bundle manifest, as one PNG."""
    hist = manifest.get("history") or []
    step = np.array([h["step"] for h in hist], float)
    losses = {k: np.array([h[k] for h in hist]) for k in ("fine", "ica") if hist and k in hist[0]}
    std = {"encoder std x sqrt(width)": np.array([h["encoder_std"] for h in hist])} if hist and "encoder_std" in hist[0] else {}
    compact = manifest["compactness"]
    row = np.hstack([_lines("training loss", step, losses), _lines("collapse check (0 = collapsed)", step, std, from_zero=True),
                     _histogram("ICA angles of the good images", compact["ica_angles"])])
    footer = np.full((30, row.shape[1], 3), 255, np.uint8)
    thr = manifest["threshold"]
    promise = ("set by hand" if thr.get("user_set") else
               f"expected false alarms {100 * thr['expected_fpr']:.1f}% +- {100 * thr['fpr_std']:.1f}%")
    # a Gaussian records the mean per-position distance, a memory bank the mean image score
    held_out = (f"held-out mean Mahalanobis distance {compact['heldout_mean_distance']:.3f}"
                if "heldout_mean_distance" in compact else f"held-out mean score {compact['heldout_mean_score']:.3f}")
    # the threshold training set: eval or infer may be run with another one (--threshold)
    cv2.putText(footer, f"compactness: {held_out}; training threshold {thr['value']:.3f} ({promise})",
                (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), np.vstack([row, footer]))
    return path

"""The image ROC curve with the bundle's operating point and the oracle's, as a picture.

Two panels: the whole curve, and its low false-alarm end, where a production
threshold sits (a few percent of good parts flagged at most).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_curve

from cfnc_edge.report.panels import COLOURS, GREY, H, M, W, panel, text, to_px

ROC_PLOT = "roc.png"
_OPERATING, _ORACLE = COLOURS[1], COLOURS[2]


def _roc_panel(title: str, fpr: np.ndarray, tpr: np.ndarray, op: dict, x_max: float) -> np.ndarray:
    img = panel(title)

    def px(x, y) -> np.ndarray:
        return np.stack([to_px(x, 0.0, x_max, M, W - 10), to_px(y, 0.0, 1.0, H - M, 20)],
                        -1).round().astype(np.int32)

    cv2.line(img, *map(tuple, px(np.array([0.0, x_max]), np.array([0.0, x_max]))), GREY, 1, cv2.LINE_AA)  # chance
    inside = fpr <= x_max  # the curve up to the panel's edge, where it is interpolated
    x, y = np.r_[fpr[inside], x_max], np.r_[tpr[inside], np.interp(x_max, fpr, tpr)]
    cv2.polylines(img, [px(x, y)], False, COLOURS[0], 2, cv2.LINE_AA)
    for (x, y), colour in (((op["oracle_good_flagged"], op["oracle_caught"]), _ORACLE),
                           ((op["good_flagged"], op["defects_caught"]), _OPERATING)):
        cv2.circle(img, tuple(px(x, y)), 6, colour, 2, cv2.LINE_AA)
    text(img, "0", (M - 4, H - M + 16), 0.33)
    text(img, f"{100 * x_max:.0f}%", (W - 40, H - M + 16), 0.33)
    text(img, "100%", (2, 26), 0.33)
    text(img, "good parts flagged", (M + 90, H - M + 16))
    return img


def plot_roc(scores: np.ndarray, labels: np.ndarray, op: dict, path: Path) -> Path:
    """The ROC of image scores (defects caught against good parts flagged) with the
    threshold's point and the oracle's (report/metrics.operating_point), as one PNG."""
    fpr, tpr, _ = roc_curve(np.asarray(labels, bool), np.asarray(scores, np.float64))
    zoom = min(1.0, max(0.1, 2 * op["good_flagged"]))
    row = np.hstack([_roc_panel("defects caught against good parts flagged", fpr, tpr, op, 1.0),
                     _roc_panel(f"the low false-alarm end (0 .. {100 * zoom:.0f}%)", fpr, tpr, op, zoom)])
    footer = np.full((50, row.shape[1], 3), 255, np.uint8)
    text(footer, f"o threshold {op['threshold']:.3g}: {100 * op['defects_caught']:.1f}% caught, "
                 f"{100 * op['good_flagged']:.1f}% flagged", (10, 20), 0.45, _OPERATING)
    text(footer, f"o oracle (best threshold at no more false alarms): {100 * op['oracle_caught']:.1f}% caught, "
                 f"{100 * op['oracle_good_flagged']:.1f}% flagged", (10, 40), 0.45, _ORACLE)
    cv2.imwrite(str(path), np.vstack([row, footer]))
    return path

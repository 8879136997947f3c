"""Pictures: heatmap overlays that an inspector reads at a glance."""

from __future__ import annotations

import cv2
import numpy as np


def heat_scale(threshold: float | None, score: float) -> float:
    """The distance drawn full red: twice the threshold, so the threshold sits
    mid-scale, as in Inspection.normalized_score. `infer`, `eval` and `stream`
    all colour through here, so one image looks the same in all three.

    Without a threshold there is no common scale: the image's own score is
    put mid-scale instead.
    """
    ref = threshold if threshold is not None and threshold > 0 else score
    return 2 * ref


def heat_overlay(frame: np.ndarray, amap: np.ndarray, scale: float, alpha: float = 0.5) -> np.ndarray:
    """Blend a JET heatmap of amap (frame-sized) over a BGR frame.

    A fixed scale (not per-image min-max) keeps colours comparable between
    images: red means the same distance everywhere.
    """
    norm = np.clip(amap / max(scale, 1e-6), 0, 1)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(frame, 1 - alpha, heat, alpha, 0)


def label(img: np.ndarray, text: str, color=(255, 255, 255)) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, color, 1, cv2.LINE_AA)
    return out


def verdict_text(score: float, anomalous: bool | None) -> tuple[str, tuple[int, int, int]]:
    if anomalous is None:
        return f"score {score:.2f}", (255, 255, 255)
    return (f"score {score:.2f} {'ANOMALY' if anomalous else 'ok'}",
            (60, 60, 255) if anomalous else (120, 255, 120))


def panel(frame: np.ndarray, amap: np.ndarray, score: float, anomalous: bool | None, scale: float,
          mask: np.ndarray | None = None, width: int = 256) -> np.ndarray:
    """[input | input + ground-truth outline | heatmap overlay], each `width` wide."""
    h = int(round(frame.shape[0] * width / frame.shape[1]))
    f = cv2.resize(frame, (width, h), interpolation=cv2.INTER_AREA)
    m = cv2.resize(amap, (width, h), interpolation=cv2.INTER_LINEAR)
    tiles = [label(f, "input")]
    if mask is not None:
        outlined = f.copy()
        mk = cv2.resize(mask.astype(np.uint8), (width, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(mk, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(outlined, contours, -1, (0, 0, 255), 1)
        tiles.append(label(outlined, "ground truth"))
    text, color = verdict_text(score, anomalous)
    tiles.append(label(heat_overlay(f, m, scale), text, color))
    return np.concatenate(tiles, axis=1)

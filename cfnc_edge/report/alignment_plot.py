"""ICA as a picture: raw good images above, the same images as ICA aligned them below.

The evidence that coarse alignment works is visual before it is numeric: posed
parts should land in one consistent pose (screws upright, head on top);
textures should come out unchanged.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from cfnc_edge.model.alignment import ica_angle_degrees, warp
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.report.visualize import label


@torch.no_grad()
def plot_alignment(model: CoarseToFine, images_u8: np.ndarray, path: Path | str, n: int = 8,
                   tile: int = 160) -> Path:
    """Write a 2-row picture of up to `n` uint8 RGB model inputs (N, 3, h, w): raw, then ICA-aligned,
    each aligned image labelled with its ICA angle. Returns the path."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8[:n])).to(model.mean.device)
    _, theta = model.align_image(model.normalise(x))
    # the raw pixels warped by ICA's own transform: what the backbone sees, before normalisation
    aligned = warp(x.float(), theta).clamp(0, 255).byte().cpu().numpy()
    angles = ica_angle_degrees(theta.cpu().numpy())

    def row(batch, texts):
        cells = []
        for img, text in zip(batch, texts):
            bgr = cv2.cvtColor(np.ascontiguousarray(img.transpose(1, 2, 0)), cv2.COLOR_RGB2BGR)
            h, w = bgr.shape[:2]
            cells.append(label(cv2.resize(bgr, (round(tile * w / h), tile), interpolation=cv2.INTER_AREA), text))
        return np.hstack(cells)

    picture = np.vstack([row(images_u8[:n], ["input"] * len(angles)),
                         row(aligned, [f"ICA {a:+.0f} deg" for a in angles])])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), picture)
    return path

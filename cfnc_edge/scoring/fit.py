"""Gaussian fit and decision threshold, written into the bundle."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from cfnc_edge.bundle import GAUSSIAN, WEIGHTS, Bundle
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor


@torch.inference_mode()
def fit_gaussian(model: CoarseToFine, images: np.ndarray, batch_size: int = 32, eps: float = 0.01,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, S, S) -> (mean (P, d), packed whitening factor (P, T)), float64."""
    model.eval()
    s = model.cfg.feature_size
    acc = GaussianAccumulator(s * s, model.cfg.feature_channels)
    for i in tqdm(range(0, len(images), batch_size), desc="fitting Gaussian", disable=not progress,
                  unit="batch", leave=False):
        feats, _ = model(torch.from_numpy(images[i:i + batch_size]))
        acc.update(feats)
    mean, cov = acc.finalize(eps)
    return mean, whitening_factor(cov)


def write_model(bundle: Bundle, model: CoarseToFine, mean: np.ndarray, factor: np.ndarray,
                eps: float, **manifest) -> None:
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    bundle.write(
        {WEIGHTS: Bundle.tensor_bytes(weights),
         GAUSSIAN: Bundle.tensor_bytes({"mean": mean.astype(np.float32), "factor": factor.astype(np.float32)})},
        model=model.cfg.to_dict(), scorer={"kind": "gaussian"}, gaussian={"eps": eps, "positions": int(mean.shape[0]),
                                             "dim": int(mean.shape[1])},
        **manifest,
    )

"""The trained model of a bundle, back in PyTorch."""

from __future__ import annotations

import torch

from cfnc_edge.bundle import WEIGHTS, Bundle
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig


def load_model(bundle: Bundle) -> CoarseToFine:
    cfg = ModelConfig(**bundle.model_config)
    model = CoarseToFine(cfg, pretrained=False)
    state = {k: torch.from_numpy(v) for k, v in bundle.tensors(WEIGHTS).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()

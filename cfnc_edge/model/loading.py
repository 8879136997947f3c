"""The trained model of a bundle, back in PyTorch."""

from __future__ import annotations

import torch

from cfnc_edge.bundle import WEIGHTS, Bundle
from cfnc_edge.errors import BundleError
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig


def load_model(bundle: Bundle) -> CoarseToFine:
    cfg = ModelConfig(**bundle.model_config)
    model = CoarseToFine(cfg, pretrained=False)
    state = {k: torch.from_numpy(v) for k, v in bundle.tensors(WEIGHTS).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing, unexpected or mis-shaped tensors
        first = str(exc).strip().splitlines()[-1].strip()
        raise BundleError(f"{bundle.path}: {WEIGHTS} does not fit the model its manifest describes ({first}): "
                          "the manifest was edited or the files come from different bundles; re-create it "
                          "or `cfnc-edge bundle rollback`") from None
    return model.eval()

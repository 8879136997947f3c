"""PyTorch feature backend (the reference every other backend is checked against)."""

from __future__ import annotations

import numpy as np
import torch

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.model.loading import load_model
from cfnc_edge.runtime.backends.base import HostBackend


class TorchBackend(HostBackend):
    name = "torch"
    provider = "PyTorch (CPU)"

    def __init__(self, bundle: Bundle, precision: str = "fp32"):
        if precision != "fp32":
            raise CfncError("the torch backend runs fp32 only; use --backend onnxruntime for fp16/int8")
        self.precision = precision
        self.model = load_model(bundle)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, theta = self.model(torch.from_numpy(np.ascontiguousarray(batch)))
        return feats.numpy(), theta.numpy()

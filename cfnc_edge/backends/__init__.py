"""Feature backends: one interface, chosen in one place.

A backend maps a uint8 RGB batch (B, 3, S, S) to the d-channel feature map
(B, d, S/4, S/4) and the ICA transforms (B, 2, 3), both float32 NumPy.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..bundle import Bundle
from ..errors import CfncError


class FeatureBackend(Protocol):
    name: str
    precision: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


BACKENDS = ("auto", "torch")


def create_backend(bundle: Bundle, name: str = "auto", precision: str = "fp32") -> FeatureBackend:
    if name in ("auto", "torch"):
        from .torch_backend import TorchBackend

        return TorchBackend(bundle, precision)
    raise CfncError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")

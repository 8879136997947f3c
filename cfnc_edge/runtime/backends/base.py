"""The interface every feature backend implements."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from cfnc_edge.runtime.scoring import CpuScoring, Scoring, already_scored


class FeatureBackend(Protocol):
    name: str
    precision: str
    device: str  # "cpu" or "cuda": where features come out
    provider: str  # what actually runs the model (execution provider, TensorRT version, ...)
    stream: Any  # the CUDA stream the backend runs on; None on the CPU

    def __call__(self, batch: np.ndarray) -> tuple[Any, Any]: ...

    def scoring(self, scorer: dict[str, np.ndarray]) -> Scoring:
        """A Scoring for the bundle's scorer tensors (Gaussian or memory bank) on this backend's device."""


class HostBackend:
    """Shared by backends whose features come out in host memory. `in_graph`: the
    backend's graph computes the distances itself (an exported memory-bank graph)
    and returns them in place of the features, so scoring skips that step."""

    device = "cpu"
    stream = None
    in_graph = False

    def scoring(self, scorer: dict[str, np.ndarray]) -> Scoring:
        return CpuScoring(scorer, already_scored if self.in_graph else None)

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

    def frame_path(self, scorer: dict[str, np.ndarray], size: tuple[int, int]) -> Any:
        """The whole frame (resize to distance and maps) on the device in one call, or None:
        frames (BGR uint8) and timings -> (maps, scores) on the host (runtime/gpu/frame_graph.py)."""


class HostBackend:
    """Shared by backends whose features come out in host memory. `in_graph`: the
    backend's graph computes the distances itself (an exported memory-bank graph)
    and returns them in place of the features, so scoring skips that step."""

    device = "cpu"
    stream = None
    in_graph = False

    def scoring(self, scorer: dict[str, np.ndarray]) -> Scoring:
        return CpuScoring(scorer, already_scored if self.in_graph else None)

    @staticmethod
    def frame_path(scorer: dict[str, np.ndarray], size: tuple[int, int]) -> None:
        return None  # on the CPU the per-stage pipeline is the frame path

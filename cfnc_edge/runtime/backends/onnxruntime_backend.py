"""ONNX Runtime feature backend (fp32, fp16, int8 Q/DQ).

Uses the CUDA execution provider when present, the CPU one otherwise. A
graph exported from a memory-bank bundle also emits the nearest-neighbour
distances (the bank is a constant of the graph): then the backend returns
distances instead of features and its Scoring skips the distance step.
"""

from __future__ import annotations

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.runtime.artefacts import check_exported_from, onnx_file
from cfnc_edge.runtime.backends.base import HostBackend


def providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxRuntimeBackend(HostBackend):
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, precision: str = "fp32"):
        import onnxruntime as ort

        self.precision = precision
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # the distance step runs next on the same cores: idle intra-op threads
        # spin-waiting (ORT's default) take them from it: frame to verdict at batch 1
        # on a loaded 2-core CPU became much faster (benchmarks/results/peers-cpu-shared.md,
        # and the note atop benchmarks/results/bench-magnetic-tile.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = onnx_file(bundle, precision)
        self.session = ort.InferenceSession(str(path), opts, providers=providers())
        check_exported_from(bundle, self.session.get_modelmeta().custom_metadata_map, path)
        self.provider = self.session.get_providers()[0]
        self.in_graph = "distances" in {o.name for o in self.session.get_outputs()}
        self.outputs = ["distances" if self.in_graph else "features", "theta"]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, theta = self.session.run(self.outputs, {"images": np.ascontiguousarray(batch)})
        return out, theta

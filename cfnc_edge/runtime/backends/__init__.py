"""Feature backends: one interface, chosen in one place.

A backend maps a uint8 RGB batch (B, 3, S, S) to the d-channel feature map
(B, d, S/4, S/4) and the ICA transforms (B, 2, 3), float32, on its device,
and says how features on that device are scored (`scoring`).
"""

from __future__ import annotations

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.backends.base import FeatureBackend, HostBackend

__all__ = ["FeatureBackend", "HostBackend", "create_backend", "auto_backend", "tensorrt_available"]

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")


def tensorrt_available() -> bool:
    """TensorRT and CuPy importable and a CUDA device present."""
    try:
        import cupy
        import tensorrt  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - missing packages, driver or device all mean "no"
        return False


def auto_backend(bundle: Bundle, precision: str) -> str:
    """The fastest backend this machine and bundle support: TensorRT (with the
    CUDA distance kernel) where an engine for this GPU exists; else OpenVINO
    where it is installed and the export measured it faster than ONNX
    Runtime on a CPU of this model (manifest `cpu_backends`); else ONNX
    Runtime where the bundle is exported; else PyTorch."""
    from cfnc_edge.runtime.artefacts import ONNX_FILES

    if tensorrt_available():
        from cfnc_edge.runtime.gpu.engines import engine_precisions

        if precision in engine_precisions(bundle):
            return "tensorrt"
    from cfnc_edge.runtime.backends.openvino_backend import openvino_available, preferred_on_this_cpu

    if precision == "fp32" and openvino_available() and preferred_on_this_cpu(bundle):
        return "openvino"
    if bundle.has(ONNX_FILES.get(precision, "")):
        return "onnxruntime"
    return "torch"


def create_backend(bundle: Bundle, name: str = "auto", precision: str = "fp32") -> FeatureBackend:
    if name == "auto":
        name = auto_backend(bundle, precision)
    if name == "torch":
        from cfnc_edge.runtime.backends.torch_backend import TorchBackend

        return TorchBackend(bundle, precision)
    if name == "onnxruntime":
        from cfnc_edge.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(bundle, precision)
    if name == "openvino":
        from cfnc_edge.runtime.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(bundle, precision)
    if name == "tensorrt":
        if not tensorrt_available():
            raise CfncError("the tensorrt backend needs an NVIDIA GPU with TensorRT and CuPy installed "
                            "(pip install 'cfnc-edge[gpu]'); `cfnc-edge doctor` says what is missing")
        from cfnc_edge.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(bundle, precision)
    raise CfncError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")

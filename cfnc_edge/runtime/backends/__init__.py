"""Feature backends: one interface, chosen in one place.

A backend maps a uint8 RGB batch (B, 3, S, S) to the d-channel feature map
(B, d, S/4, S/4) and the ICA transforms (B, 2, 3), float32, on its device,
and says how features on that device are scored (`scoring`).
"""

from __future__ import annotations

from collections.abc import Collection

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.backends.base import FeatureBackend, HostBackend
from cfnc_edge.runtime.gpu.device import missing, require

__all__ = ["FeatureBackend", "HostBackend", "create_backend", "auto_backend", "choose_backend", "export_hint",
           "tensorrt_available", "torch_cuda_available"]

BACKENDS = ("auto", "tensorrt", "torch-cuda", "torch-cuda-graphs", "openvino", "onnxruntime", "torch")


def tensorrt_available() -> bool:
    """TensorRT and CuPy importable and a CUDA device present."""
    return missing("tensorrt") is None


def torch_cuda_available() -> bool:
    """A CUDA build of PyTorch, CuPy, and a CUDA device both see."""
    return missing("torch-cuda") is None


def choose_backend(precision: str, tensorrt: Collection[str], torch_cuda: Collection[str],
                   onnx: Collection[str], openvino: bool = False) -> str:
    """`auto`'s order, given the precisions each backend can run here: TensorRT,
    then PyTorch on CUDA, then OpenVINO (fp32, where it is installed and was
    measured faster than ONNX Runtime for this model on this CPU), then ONNX
    Runtime, then PyTorch on the CPU."""
    if precision in tensorrt:
        return "tensorrt"
    if precision in torch_cuda:
        return "torch-cuda"
    if openvino and precision == "fp32" and precision in onnx:
        return "openvino"
    if precision in onnx:
        return "onnxruntime"
    return "torch"


def auto_backend(bundle: Bundle, precision: str) -> str:
    """The fastest backend this machine and bundle support for `precision`:
    TensorRT (with the CUDA distance kernel) where an engine for this GPU
    exists, else PyTorch on CUDA, else OpenVINO where installed and measured
    faster than ONNX Runtime at export (manifest `cpu_backends`), else ONNX
    Runtime where the bundle is exported, else PyTorch on the CPU."""
    from cfnc_edge.runtime.artefacts import ONNX_FILES

    tensorrt: list[str] = []
    if tensorrt_available():
        from cfnc_edge.runtime.gpu.engines import engine_precisions

        tensorrt = engine_precisions(bundle)
    torch_cuda: tuple[str, ...] = ()
    if torch_cuda_available():
        from cfnc_edge.runtime.backends.torch_cuda_backend import PRECISIONS

        torch_cuda = tuple(PRECISIONS)
    onnx = [p for p, f in ONNX_FILES.items() if bundle.has(f)]
    from cfnc_edge.runtime.backends.openvino_backend import (
        openvino_available,
        preferred_on_this_cpu,
    )

    openvino = openvino_available() and preferred_on_this_cpu(bundle)
    return choose_backend(precision, tensorrt, torch_cuda, onnx, openvino)


def create_backend(bundle: Bundle, name: str = "auto", precision: str = "fp32") -> FeatureBackend:
    """The feature backend `name` (one of BACKENDS) for `bundle` at `precision`;
    `auto` picks with `auto_backend`. GPU backends missing their packages or
    device raise a CfncError that names the install command."""
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
        require("tensorrt", "the tensorrt backend")
        from cfnc_edge.runtime.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(bundle, precision)
    if name in ("torch-cuda", "torch-cuda-graphs"):
        require("torch-cuda", f"the {name} backend")
        from cfnc_edge.runtime.backends.torch_cuda_backend import TorchCudaBackend

        return TorchCudaBackend(bundle, precision, cuda_graphs=name == "torch-cuda-graphs")
    raise CfncError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")


def export_hint(bundle: Bundle, asked: str, backend: FeatureBackend) -> str | None:
    """One line for when `auto` fell back to PyTorch on the CPU because the bundle has
    no exported graph (None otherwise). Exporting is not done on the fly: it writes
    into the bundle (and would change a signed one), and its parity checks take
    longer than a short run; the user decides once."""
    from cfnc_edge.runtime.artefacts import ONNX_FILES

    if asked != "auto" or backend.name != "torch" or any(bundle.has(f) for f in ONNX_FILES.values()):
        return None
    return (f"note: {bundle.path} is not exported, so this runs on PyTorch, the slowest CPU backend; "
            f"`cfnc-edge export --bundle {bundle.path}` once and `auto` uses ONNX Runtime or OpenVINO "
            "(docs/deployment.md gives the speeds)")

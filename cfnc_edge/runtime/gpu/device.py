"""What the GPU path needs and whether this machine has it, said once.

`missing(backend)` names the first missing piece for a GPU backend;
`require(backend, what)` turns that into the one user-facing error (what is
missing and the install command that fixes it), used by create_backend and
build-engine alike. `gpu_info` decodes the device's properties for engine
names and the doctor.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from cfnc_edge.errors import CfncError

# what each GPU backend imports, besides a CUDA device; CuPy first (missing() asks it before the rest)
NEEDS = {"tensorrt": ("cupy", "tensorrt"), "torch-cuda": ("cupy", "torch")}
INSTALL = {
    "tensorrt": "pip install 'cfnc-edge[gpu-cu12]' (CUDA 12 driver) or 'cfnc-edge[gpu-cu13]' (CUDA 13 driver, "
                "r580+); on Jetson, the system TensorRT in a --system-site-packages venv (README, GPU section)",
    "torch-cuda": "a CUDA build of PyTorch and pip install 'cupy-cuda12x[ctk]' (CUDA 12 driver) or "
                  "'cupy-cuda13x[ctk]' (CUDA 13 driver)",
}


def decode_name(raw) -> str:
    """CUDA reports the device name as bytes through CuPy, as str elsewhere."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "87" for sm_87
    memory_gib: float


def gpu_info(device_id: int = 0) -> GpuInfo:
    import cupy as cp

    p = cp.cuda.runtime.getDeviceProperties(device_id)
    return GpuInfo(decode_name(p["name"]), f"{p['major']}{p['minor']}", p["totalGlobalMem"] / 2**30)


def cuda_devices() -> int:
    """CUDA devices CuPy sees; 0 without CuPy, a driver or a device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - missing package, driver or device all mean "none"
        return 0


def _import_problem(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a library that fails to load
        return f"{module} cannot be imported ({type(exc).__name__}: {exc})"
    return None


def missing(backend: str) -> str | None:
    """Why `backend` cannot run here, or None when it can.

    CuPy and the device are asked first: on a machine without them PyTorch
    is never imported, so `auto` on the ONNX Runtime path stays torch-free.
    """
    problem = _import_problem("cupy") or (None if cuda_devices() else "CuPy sees no CUDA device")
    for module in NEEDS[backend][1:]:
        problem = problem or _import_problem(module)
    if problem is None and backend == "torch-cuda":
        import torch

        if torch.version.cuda is None:
            problem = f"PyTorch {torch.__version__} is a CPU-only build"
        elif not torch.cuda.is_available():
            problem = "PyTorch sees no CUDA device"
    return problem


def require(backend: str, what: str) -> None:
    """Raise the one error that says what `what` lacks and how to install it."""
    reason = missing(backend)
    if reason is not None:
        needs = " and ".join(NEEDS[backend])
        raise CfncError(f"{what} needs an NVIDIA GPU with {needs}, but {reason}: {INSTALL[backend]}; "
                        "`cfnc-edge doctor` says what else is missing")

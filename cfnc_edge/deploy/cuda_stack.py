"""Does this machine's CUDA stack fit together? The CUDA version the driver
supports against what TensorRT, CuPy and PyTorch were built for, with the
command that fixes each mismatch known.

`read_stack` gathers the facts without creating a CUDA context (the driver
version comes straight from libcuda, the rest from package metadata), and
`findings` is a pure function of them, so every rule is tested with
constructed version numbers on machines without a GPU.
"""

from __future__ import annotations

import ctypes
import importlib.metadata as md
import re
from dataclasses import dataclass, field
from pathlib import Path

CUPY_PACKAGES = ("cupy-cuda11x", "cupy-cuda12x", "cupy-cuda13x", "cupy")
TENSORRT_PACKAGES = ("tensorrt-cu12", "tensorrt-cu12-libs", "tensorrt-cu12-bindings",
                     "tensorrt-cu13", "tensorrt-cu13-libs", "tensorrt-cu13-bindings")
TORCH_INDEX = {12: "cu128", 13: "cu130"}  # PyTorch wheel indexes per driver CUDA major
JETSON_TORCH = "NVIDIA's PyTorch wheel for JetPack 6 (docs.nvidia.com: 'Installing PyTorch for Jetson Platform')"


@dataclass
class CudaStack:
    driver: tuple[int, int] | None  # the CUDA version the driver supports; None: no driver
    cupy: list[str] = field(default_factory=list)  # installed CuPy packages
    nvrtc: bool | None = None  # CuPy finds NVRTC (None: CuPy not importable)
    tensorrt: str | None = None  # version TensorRT reports, None: not importable
    tensorrt_packages: list[str] = field(default_factory=list)  # pip TensorRT packages (none: system TensorRT)
    torch_cuda: tuple[int, int] | None = None  # CUDA PyTorch was built for; None: CPU build or no PyTorch
    jetson: bool = False


def _major(package: str) -> int | None:
    m = re.search(r"cu(?:da)?(\d\d)", package)
    return int(m.group(1)) if m else None


def _installed(packages) -> list[str]:
    out = []
    for p in packages:
        try:
            md.version(p)
            out.append(p)
        except md.PackageNotFoundError:
            pass
    return out


def driver_cuda() -> tuple[int, int] | None:
    """cuDriverGetVersion from libcuda itself: no CUDA package or context needed."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int()
        if lib.cuDriverGetVersion(ctypes.byref(v)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return v.value // 1000, v.value % 1000 // 10


def read_stack() -> CudaStack:
    s = CudaStack(driver_cuda(), _installed(CUPY_PACKAGES), tensorrt_packages=_installed(TENSORRT_PACKAGES),
                  jetson=Path("/etc/nv_tegra_release").exists())
    try:
        import cupy

        try:
            cupy.cuda.nvrtc.getVersion()
            s.nvrtc = True
        except Exception:  # noqa: BLE001 - the library is missing: CuPy raises its loader's error
            s.nvrtc = False
    except Exception:  # noqa: BLE001 - CuPy not installed or not loadable
        pass
    try:
        import tensorrt

        s.tensorrt = tensorrt.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        if torch.version.cuda:
            s.torch_cuda = tuple(int(x) for x in torch.version.cuda.split(".")[:2])
    except Exception:  # noqa: BLE001
        pass
    return s


def findings(s: CudaStack) -> list[tuple[str, str]]:
    """(item, finding) rows; a finding that starts with MISMATCH or MISSING ends with its fix."""
    if s.driver is None:
        return [("cuda driver", "none found (libcuda.so.1): the GPU backends cannot run here; install the "
                                "NVIDIA driver, or use the CPU backends (onnxruntime, torch)")]
    major = s.driver[0]
    rows = [("cuda driver", f"supports CUDA {s.driver[0]}.{s.driver[1]}")]
    if major < 12:
        return rows + [("cuda driver", f"MISMATCH: CUDA {major} is older than every GPU package this project "
                                       "uses; update the driver to r525+ (CUDA 12) or r580+ (CUDA 13)")]
    cu = 13 if major >= 13 else 12
    newer_driver = "or update the driver to r580+ (CUDA 13)"
    rows.append(("cupy", _cupy(s, major, cu, newer_driver)))
    rows.append(("tensorrt", _tensorrt(s, major, cu, newer_driver)))
    rows.append(("torch", _torch(s, major)))
    return rows


def _cupy(s: CudaStack, major: int, cu: int, newer_driver: str) -> str:
    want = f"cupy-cuda{cu}x"
    install = f"pip install '{want}[ctk]'" if not s.jetson else \
        "pip install cupy-cuda12x (NVRTC from JetPack: export CUDA_PATH=/usr/local/cuda)"
    if not s.cupy:
        return f"MISSING: no CuPy, so no GPU backend: `{install}`"
    if len(s.cupy) > 1:
        return f"MISMATCH: {', '.join(s.cupy)} are installed and shadow each other: " \
               f"`pip uninstall -y {' '.join(s.cupy)} && {install}`"
    built = _major(s.cupy[0])
    if built is not None and built > major:
        return f"MISMATCH: {s.cupy[0]} is built for CUDA {built}, the driver supports CUDA {major}: " \
               f"`pip uninstall -y {s.cupy[0]} && {install}`, {newer_driver}"
    if s.nvrtc is False:
        return f"MISMATCH: {s.cupy[0]} finds no NVRTC, so the CUDA distance kernel cannot compile: `{install}`"
    return f"ok: {s.cupy[0]}" + (f" (CUDA {built})" if built else "")


def _tensorrt(s: CudaStack, major: int, cu: int, newer_driver: str) -> str:
    pip_built = {_major(p) for p in s.tensorrt_packages}
    remove = f"pip uninstall -y tensorrt {' '.join(s.tensorrt_packages)}"
    if s.jetson and s.tensorrt_packages:
        return f"MISMATCH: TensorRT from pip on a Jetson ({', '.join(s.tensorrt_packages)}): `{remove}` and " \
               "use JetPack's TensorRT in a venv made with --system-site-packages (README, GPU section)"
    if s.tensorrt is None:
        if s.jetson:
            return "MISSING (optional, the fastest path): `sudo apt install python3-libnvinfer` and a venv " \
                   "made with --system-site-packages"
        return f"MISSING (optional, the fastest path): `pip install 'cfnc-edge[gpu-cu{cu}]'`"
    if len(pip_built) > 1:
        return f"MISMATCH: TensorRT packages for CUDA {' and '.join(map(str, sorted(pip_built)))} are mixed: " \
               f"`{remove} && pip install 'cfnc-edge[gpu-cu{cu}]'`"
    built = next(iter(pip_built), None)
    if built is not None and built > major:
        return f"MISMATCH: TensorRT {s.tensorrt} is built for CUDA {built}, the driver supports CUDA {major}: " \
               f"`{remove} && pip install 'cfnc-edge[gpu-cu{cu}]'`, {newer_driver}"
    cupy_built = _major(s.cupy[0]) if len(s.cupy) == 1 else None
    if built is not None and cupy_built is not None and built != cupy_built:
        return f"MISMATCH: TensorRT for CUDA {built} and {s.cupy[0]} for CUDA {cupy_built} would load two " \
               f"CUDA runtimes into one process: `{remove} && pip install 'cfnc-edge[gpu-cu{cu}]'`"
    return f"ok: TensorRT {s.tensorrt}" + (f" (CUDA {built})" if built else " (system)")


def _torch(s: CudaStack, major: int) -> str:
    index = f"pip install --force-reinstall torch torchvision --index-url " \
            f"https://download.pytorch.org/whl/{TORCH_INDEX[min(major, 13)]}"
    fix = JETSON_TORCH if s.jetson else f"`{index}`"
    if s.torch_cuda is None:
        return f"MISSING: a CPU-only PyTorch, so no torch-cuda backend: {fix}"
    if s.torch_cuda[0] > major:
        return f"MISMATCH: PyTorch is built for CUDA {s.torch_cuda[0]}.{s.torch_cuda[1]}, the driver supports " \
               f"CUDA {major}: {fix}, or update the driver to r580+ (CUDA 13)"
    return f"ok: PyTorch for CUDA {s.torch_cuda[0]}.{s.torch_cuda[1]}"

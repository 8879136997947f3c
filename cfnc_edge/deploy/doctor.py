"""`cfnc-edge doctor`: what this machine can run, whether its CUDA stack fits
together (deploy/cuda_stack.py, with the fix for each mismatch), and which
backend `auto` picks."""

from __future__ import annotations

import importlib.metadata as md
import platform

import numpy as np

from cfnc_edge.deploy.cuda_stack import findings, read_stack
from cfnc_edge.runtime.gpu.device import cuda_devices, gpu_info, missing


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def kernel_check(dim: int = 37, batch: int = 3, positions: int = 50) -> float:
    """Compile the CUDA kernel and return its max relative error against float64."""
    import cupy as cp

    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis
    from cfnc_edge.scoring.reference import random_problem, reference_distance
    from cfnc_edge.scoring.packing import unpack

    packed, mean, x = random_problem(np.random.default_rng(0), batch, dim, positions)
    got = cp.asnumpy(GpuMahalanobis(mean, packed.astype(np.float32), "fp32")(
        x.reshape(batch, dim, positions, 1).astype(np.float32)))
    ref = reference_distance(unpack(packed, dim), mean, x)
    return float(np.max(np.abs(got.reshape(batch, positions) - ref) / ref))


def report(bundle=None) -> list[tuple[str, str]]:
    rows = [("python", platform.python_version()), ("machine", f"{platform.machine()}, {platform.system()}")]
    for pkg in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt", "cupy-cuda12x", "cupy-cuda13x", "cupy"):
        v = _version(pkg)
        if v != "not installed" or pkg in ("torch", "onnxruntime", "tensorrt"):
            rows.append((pkg, v))
    try:
        import onnxruntime as ort

        rows.append(("onnxruntime providers", ", ".join(ort.get_available_providers())))
    except ImportError:
        pass
    from cfnc_edge.runtime import cpu_kernel

    rows.append(("cpu distance kernel", "compiled for this CPU (fp32/fp16/int8 factors)" if cpu_kernel.load() else
                 "no C++ compiler: NumPy fallback, factor in fp32 (apt-get install g++ for fp16/int8 speed)"))
    rows += findings(read_stack())
    gpus = cuda_devices()
    if gpus:
        gpu = gpu_info(0)
        rows.append(("gpu", f"{gpu.name} (sm{gpu.compute_capability}, {gpu.memory_gib:.0f} GiB)"
                            + (f", and {gpus - 1} more" if gpus > 1 else "")))
        try:
            err = kernel_check()
            rows.append(("mahalanobis kernel", f"compiled; max rel. error vs float64 {err:.1e} "
                                               f"({'ok' if err < 1e-4 else 'TOO LARGE'})"))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the diagnosis
            rows.append(("mahalanobis kernel", f"FAILED: {type(exc).__name__}: {exc}"))
    else:
        rows.append(("gpu", "no CUDA device"))
    for backend in ("tensorrt", "torch-cuda"):
        why = missing(backend)
        rows.append((f"{backend} path", "available" if why is None else f"unavailable: {why}"))
    if bundle is not None:
        from cfnc_edge.runtime.backends import auto_backend

        for precision in ("fp32", "fp16", "int8"):
            rows.append((f"auto backend ({precision})", auto_backend(bundle, precision)))
    else:
        rows.append(("auto backend", "tensorrt where an engine is built, else torch-cuda (fp32, fp16), else "
                                     "openvino if installed and measured faster at export on this CPU, else "
                                     "onnxruntime if the bundle is exported, else torch"))
    return rows

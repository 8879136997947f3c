"""`cfnc-edge doctor`: what this machine can run, and which backend `auto` picks."""

from __future__ import annotations

import importlib.metadata as md
import platform

import numpy as np


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def _gpu() -> tuple[dict, str | None]:
    try:
        import cupy as cp

        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable GPU
        return {}, f"no usable GPU ({type(exc).__name__}: {exc})"
    if n == 0:
        return {}, "no CUDA device"
    p = cp.cuda.runtime.getDeviceProperties(0)
    name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
    return {"gpu": f"{name} (sm{p['major']}{p['minor']}, {p['totalGlobalMem'] / 2**30:.0f} GiB)",
            "driver": str(cp.cuda.runtime.driverGetVersion()), "cuda runtime": str(cp.cuda.runtime.runtimeGetVersion()),
            "cupy": cp.__version__}, None


def kernel_check(dim: int = 37, batch: int = 3, positions: int = 50) -> float:
    """Compile the CUDA kernel and return its max relative error against float64."""
    import cupy as cp

    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis
    from cfnc_edge.scoring.factor import random_problem, reference_distance
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
    gpu, why = _gpu()
    rows += list(gpu.items()) or [("gpu", why)]
    if gpu:
        try:
            err = kernel_check()
            rows.append(("mahalanobis kernel", f"compiled; max rel. error vs float64 {err:.1e} "
                                               f"({'ok' if err < 1e-4 else 'TOO LARGE'})"))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the diagnosis
            rows.append(("mahalanobis kernel", f"FAILED: {type(exc).__name__}: {exc}"))
    from cfnc_edge.runtime.backends import tensorrt_available

    rows.append(("tensorrt path", "available" if tensorrt_available() else "unavailable"))
    if bundle is not None:
        from cfnc_edge.runtime.backends import auto_backend

        for precision in ("fp32", "fp16", "int8"):
            rows.append((f"auto backend ({precision})", auto_backend(bundle, precision)))
    else:
        rows.append(("auto backend", "tensorrt where an engine is built, else onnxruntime if exported, else torch"
                     if tensorrt_available() else "openvino if installed and measured faster at export on this CPU "
                     "model, else onnxruntime if the bundle is exported, else torch"))
    return rows

"""kernels/mahalanobis_cpu.cpp, compiled for this CPU on first use.

The distance step streams the whole factor once per frame; in fp16 or int8
it needs the conversion fused into the product, which NumPy cannot do. The
kernel is a single C++ file built with the system compiler (-march=native:
it runs where it is built) into a cache folder keyed by the source's hash
and the compiler command, so it is built once per machine and source.
Without a compiler `load()` returns None and the runtime falls back to
NumPy with the factor in fp32 (`cfnc-edge doctor` reports which is used).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).resolve().parents[1] / "kernels" / "mahalanobis_cpu.cpp"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
KINDS = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int8): 2}
_F = ctypes.POINTER(ctypes.c_float)


def cache_dir() -> Path:
    return Path(os.environ.get("CFNC_CACHE") or Path.home() / ".cache" / "cfnc-edge")


@cache
def load() -> ctypes.CDLL | None:
    """The compiled kernel, or None where no C++ compiler can build it."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((cxx, *FLAGS)).encode()).hexdigest()[:16]
    lib = cache_dir() / f"mahalanobis_cpu-{key}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            out = Path(tmp) / lib.name
            r = subprocess.run([cxx, *FLAGS, "-o", str(out), str(SOURCE)], capture_output=True, text=True)
            if r.returncode != 0:
                return None
            os.replace(out, lib)  # atomic: concurrent first uses each build, one wins
    dll = ctypes.CDLL(str(lib))
    dll.cfnc_mahalanobis_sq.argtypes = [_F, _F, ctypes.c_void_p, _F, _F] + [ctypes.c_int] * 6
    dll.cfnc_mahalanobis_sq.restype = ctypes.c_int
    dll.cfnc_rows.restype = dll.cfnc_max_dim.restype = ctypes.c_int
    return dll


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(_F)


def squared_distances(dll: ctypes.CDLL, feats: np.ndarray, mean: np.ndarray, factor: np.ndarray,
                      scale: np.ndarray | None, out: np.ndarray, p0: int, p1: int) -> None:
    """out[:, p0:p1] = ||W (x - mu)||^2 for positions [p0, p1): feats (B, d, P)
    float32 C-contiguous, factor in the kernel's layout (distance.blocked),
    scale (P, dpad) for int8, out (B, P). Releases the GIL (ctypes does)."""
    b, d, p = feats.shape
    rc = dll.cfnc_mahalanobis_sq(_ptr(feats), _ptr(mean), factor.ctypes.data, _ptr(scale), _ptr(out),
                                 KINDS[factor.dtype], b, d, p, p0, p1)
    if rc:
        raise ValueError(f"the CPU kernel refused d = {d} (at most {dll.cfnc_max_dim()})")

"""What every GPU test module starts with: CuPy or a module-level skip, and
the `gpu` mark with a skip where CuPy sees no device (CI, this CPU machine).

    cupy, pytestmark = gpu_module("the GPU memory-bank path needs CuPy")
"""

import pytest


def gpu_module(why: str = "the GPU path needs CuPy"):
    cupy = pytest.importorskip("cupy", reason=why)
    try:
        have_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - CuPy raises its own runtime error where there is no driver
        have_gpu = False
    return cupy, [pytest.mark.gpu, pytest.mark.skipif(not have_gpu, reason="needs an NVIDIA GPU")]

"""`cfnc-edge doctor`'s CUDA comparison, on constructed version numbers: each
mismatch it knows is found and answered with the command that fixes it, and
a stack that fits is reported ok."""

import pytest

from cfnc_edge.deploy.cuda_stack import CudaStack, driver_cuda, findings

CU13_IMAGE = dict(cupy=["cupy-cuda13x"], nvrtc=True, torch_cuda=(13, 0))  # the project's GPU image


def rows(stack):
    return dict(findings(stack))


def test_a_stack_that_fits_is_ok():
    r = rows(CudaStack((13, 0), **CU13_IMAGE, tensorrt="11.4.0.106",
                       tensorrt_packages=["tensorrt-cu13", "tensorrt-cu13-libs", "tensorrt-cu13-bindings"]))
    assert r["cuda driver"] == "supports CUDA 13.0"
    assert r["cupy"] == "ok: cupy-cuda13x (CUDA 13)"
    assert r["tensorrt"] == "ok: TensorRT 11.4.0.106 (CUDA 13)"
    assert r["torch"] == "ok: PyTorch for CUDA 13.0"


def test_the_gpu_image_without_tensorrt_names_the_cu13_extra():
    assert rows(CudaStack((13, 0), **CU13_IMAGE))["tensorrt"] == \
        "MISSING (optional, the fastest path): `pip install 'cfnc-edge[gpu-cu13]'`"


def test_cuda13_packages_on_a_cuda12_driver():
    r = rows(CudaStack((12, 4), **CU13_IMAGE, tensorrt="10.16.1.11", tensorrt_packages=["tensorrt-cu13"]))
    assert r["cupy"].startswith("MISMATCH: cupy-cuda13x is built for CUDA 13, the driver supports CUDA 12")
    assert "`pip uninstall -y cupy-cuda13x && pip install 'cupy-cuda12x[ctk]'`" in r["cupy"]
    assert r["tensorrt"].startswith("MISMATCH: TensorRT 10.16.1.11 is built for CUDA 13")
    assert "`pip uninstall -y tensorrt tensorrt-cu13 && pip install 'cfnc-edge[gpu-cu12]'`" in r["tensorrt"]
    assert r["torch"].startswith("MISMATCH: PyTorch is built for CUDA 13.0, the driver supports CUDA 12")
    assert "--index-url https://download.pytorch.org/whl/cu128" in r["torch"]


def test_cupy_without_nvrtc_asks_for_the_ctk_extra():
    r = rows(CudaStack((12, 8), cupy=["cupy-cuda12x"], nvrtc=False, torch_cuda=(12, 8)))
    assert r["cupy"] == ("MISMATCH: cupy-cuda12x finds no NVRTC, so the CUDA distance kernel cannot compile: "
                         "`pip install 'cupy-cuda12x[ctk]'`")
    assert r["torch"] == "ok: PyTorch for CUDA 12.8"


def test_two_cupy_packages_and_mixed_cuda_majors():
    r = rows(CudaStack((13, 0), cupy=["cupy-cuda12x", "cupy-cuda13x"], nvrtc=True, torch_cuda=(13, 0)))
    assert r["cupy"] == ("MISMATCH: cupy-cuda12x, cupy-cuda13x are installed and shadow each other: "
                         "`pip uninstall -y cupy-cuda12x cupy-cuda13x && pip install 'cupy-cuda13x[ctk]'`")
    mixed = rows(CudaStack((13, 0), cupy=["cupy-cuda12x"], nvrtc=True, tensorrt="11.4.0.106",
                           tensorrt_packages=["tensorrt-cu13"], torch_cuda=(13, 0)))
    assert mixed["tensorrt"].startswith("MISMATCH: TensorRT for CUDA 13 and cupy-cuda12x for CUDA 12")
    both = rows(CudaStack((13, 0), **CU13_IMAGE, tensorrt="10.16.1.11",
                          tensorrt_packages=["tensorrt-cu12", "tensorrt-cu13"]))
    assert both["tensorrt"].startswith("MISMATCH: TensorRT packages for CUDA 12 and 13 are mixed")


def test_jetson_wants_the_system_tensorrt_and_jetpacks_nvrtc():
    jp6 = dict(driver=(12, 6), cupy=["cupy-cuda12x"], jetson=True)
    ok = rows(CudaStack(**jp6, nvrtc=True, tensorrt="10.3.0", torch_cuda=(12, 6)))
    assert ok["tensorrt"] == "ok: TensorRT 10.3.0 (system)" and ok["cupy"] == "ok: cupy-cuda12x (CUDA 12)"
    pip_trt = rows(CudaStack(**jp6, nvrtc=False, tensorrt_packages=["tensorrt-cu12"]))
    assert pip_trt["tensorrt"].startswith("MISMATCH: TensorRT from pip on a Jetson")
    assert "--system-site-packages" in pip_trt["tensorrt"]
    assert "export CUDA_PATH=/usr/local/cuda" in pip_trt["cupy"]
    assert "JetPack 6" in pip_trt["torch"] and "download.pytorch.org" not in pip_trt["torch"]
    missing = rows(CudaStack(**jp6, nvrtc=True, torch_cuda=(12, 6)))
    assert "`sudo apt install python3-libnvinfer`" in missing["tensorrt"]


@pytest.mark.parametrize("driver, says", [(None, "none found"), ((11, 8), "older than every GPU package")])
def test_no_driver_or_an_old_one(driver, says):
    assert any(says in text for _, text in findings(CudaStack(driver, **CU13_IMAGE)))


def test_driver_version_is_read_without_cuda_packages():
    v = driver_cuda()  # None on a machine without the NVIDIA driver; (major, minor) with one
    assert v is None or (v[0] >= 10 and 0 <= v[1] < 100)

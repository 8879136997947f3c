"""Everything about the GPU path that can be checked on a CPU."""

import subprocess
import sys

import numpy as np
import pytest

from cfnc_edge.errors import BundleError
from cfnc_edge.runtime.postprocess import anomaly_maps, anomaly_maps_ndimage
from tests.blocked_imports import blocking

BLOCK = blocking("cupy", "cupyx", "tensorrt", "pycuda")


def test_gpu_modules_import_and_auto_falls_back_without_cuda_packages(tiny_bundle):
    code = BLOCK + f"""
import cfnc_edge.runtime.gpu.mahalanobis, cfnc_edge.deploy.engine, cfnc_edge.runtime.backends.tensorrt_backend, cfnc_edge.deploy.doctor
from cfnc_edge.runtime.backends import tensorrt_available, create_backend
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
b = Bundle.open({str(tiny_bundle.path)!r})
assert not tensorrt_available()
assert Inspector(b).backend.name == 'torch' and Inspector(b).backend.device == 'cpu'
try:
    create_backend(b, 'tensorrt')
except CfncError as e:
    assert 'NVIDIA GPU' in str(e)
else:
    raise SystemExit('tensorrt backend created without TensorRT')
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_build_engine_without_gpu_is_a_clear_error(tiny_bundle):
    r = subprocess.run([sys.executable, "-c", BLOCK + "from cfnc_edge.cli import main; main()", "build-engine",
                        "--bundle", str(tiny_bundle.path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "needs an NVIDIA GPU" in r.stderr and "Traceback" not in r.stderr


def test_doctor_runs_without_a_gpu():
    r = subprocess.run([sys.executable, "-c", BLOCK + "from cfnc_edge.cli import main; main()", "doctor"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "tensorrt path" in r.stdout and "unavailable" in r.stdout


@pytest.mark.parametrize("angle", [0.0, 0.35])
def test_gpu_postprocess_code_matches_opencv_on_the_cpu(rng, angle):
    """gpu_anomaly_maps is anomaly_maps_ndimage with CuPy; with NumPy/SciPy the
    same code must reproduce the OpenCV path that the CPU pipeline uses."""
    dist = (rng.random((3, 14, 14)) * 4 + 1).astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    thetas = np.repeat(np.array([[[c, -s, 0.03], [s, c, -0.02]]], np.float32), 3, axis=0)
    ref = anomaly_maps(dist, thetas, 56)
    got = anomaly_maps_ndimage(dist, thetas, 56)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_engine_for_another_gpu_or_tensorrt_is_refused(tiny_bundle, monkeypatch):
    from cfnc_edge.runtime.gpu import engines as engine

    here = engine.Target("NVIDIA Jetson AGX Orin", "87", "10.3.0")
    monkeypatch.setattr(engine, "current_target", lambda: here)
    b = tiny_bundle
    other = engine.Target("NVIDIA H200", "90", "11.4.0")
    name = engine.engine_name(other, "fp16", 1, 32)
    assert name == "engines/nvidia-h200-sm90-trt11.4.0-fp16-b1-32.plan"
    manifest = dict(b.manifest, engines={name: {"precision": "fp16", "target": other.slug}})
    fake = type(b)(b.path, manifest)
    with pytest.raises(BundleError, match="built for nvidia-h200-sm90-trt11.4.0.*cfnc-edge build-engine"):
        engine.find_engine(fake, "fp16")
    with pytest.raises(BundleError, match="no int8 TensorRT engine"):
        engine.find_engine(fake, "int8")
    assert engine.engine_precisions(fake) == []
    mine = engine.engine_name(here, "fp16", 1, 32)
    fake.manifest["engines"][mine] = {"precision": "fp16", "target": here.slug}
    assert engine.find_engine(fake, "fp16")[0] == mine

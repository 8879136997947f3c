"""GPU tests: the CUDA kernel through CuPy, TensorRT engines, the full GPU
pipeline. Skipped on machines without an NVIDIA GPU (CI); run them with
`benchmarks/gpu_check.sh` on a GPU."""

import shutil

import numpy as np
import pytest

from cfnc_edge.runtime.gpu.device import missing
from tests.gpu_support import gpu_module

cupy, pytestmark = gpu_module("the CUDA kernel path needs CuPy")

from test_kernel import random_problem, reference  # noqa: E402


@pytest.mark.parametrize("dim", [37, 100, 176])
@pytest.mark.parametrize("batch", [1, 3, 32, 45])
@pytest.mark.parametrize("storage", ["fp32", "fp16"])
def test_cupy_kernel_matches_float64(rng, dim, batch, storage):
    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis

    positions = 301
    packed, mean, feats = random_problem(rng, batch, dim, positions)
    got = cupy.asnumpy(GpuMahalanobis(mean, packed, storage)(feats.reshape(batch, dim, positions, 1)))
    factor = packed.astype(np.float16).astype(np.float64) if storage == "fp16" else packed
    np.testing.assert_allclose(got.reshape(batch, positions), reference(factor, mean, feats), rtol=1e-4)


def test_gpu_maps_match_opencv(rng):
    from cfnc_edge.runtime.gpu.mahalanobis import gpu_anomaly_maps
    from cfnc_edge.runtime.postprocess import anomaly_maps

    dist = (rng.random((2, 56, 56)) * 4 + 1).astype(np.float32)
    thetas = np.array([[[1, 0, 0], [0, 1, 0]], [[0.95, -0.31, 0.02], [0.31, 0.95, 0.0]]], np.float32)
    np.testing.assert_allclose(cupy.asnumpy(gpu_anomaly_maps(dist, thetas, 224)), anomaly_maps(dist, thetas, 224),
                               rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def engine_bundle(tiny_bundle, tmp_path_factory):
    why = missing("tensorrt")
    if why is not None:
        pytest.skip(f"TensorRT engines need TensorRT: {why}")
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.deploy.calibrate import calibrate
    from cfnc_edge.deploy.engine import build_engine
    from cfnc_edge.deploy.export import export

    dest = tmp_path_factory.mktemp("trt") / "b"
    shutil.copytree(tiny_bundle.path, dest)
    b = Bundle.open(dest)
    export(b, log=print)
    calibrate(b, n=8, log=print)
    checks = {p: build_engine(b, p, 1, 4, 8, log=print)["check"] for p in ("fp32", "fp16", "int8")}
    return Bundle.open(dest), checks


def test_engine_features_match_onnxruntime(engine_bundle):
    _, checks = engine_bundle
    assert checks["fp32"]["mean_rel"] < 1e-3
    assert checks["fp16"]["mean_rel"] < 2e-2
    assert checks["int8"]["mean_rel"] < 0.15


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_full_gpu_pipeline_matches_cpu_pipeline(engine_bundle, tiny_data, precision):
    from cfnc_edge.images import read_image
    from cfnc_edge.runtime.inspector import Inspector

    frames = [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:5]]
    gpu = Inspector(engine_bundle[0], "tensorrt", precision)
    assert gpu.backend.device == "cuda"
    cpu = Inspector(engine_bundle[0], "onnxruntime", precision)
    for g, c in zip(gpu(frames), cpu(frames)):
        tol = 1e-3 if precision == "fp32" else 3e-2
        np.testing.assert_allclose(g.map, c.map, rtol=tol, atol=tol * c.map.max())
        assert g.score == pytest.approx(c.score, rel=tol)

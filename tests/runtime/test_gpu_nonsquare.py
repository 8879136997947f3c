"""GPU side of non-square inputs (64x160): the torch-cuda backend with GPU
distances and maps against the float64 reference, GPU maps against OpenCV.
Skipped without an NVIDIA GPU; everything checkable on the CPU is in
test_nonsquare.py."""

import numpy as np
import pytest

from tests.gpu_support import gpu_module

cupy, pytestmark = gpu_module("the GPU non-square path needs CuPy")

from test_nonsquare import HW, TOLERANCE, float64_maps, frames, wide  # noqa: E402,F401 - fixtures


@pytest.mark.parametrize("scorer", ["gaussian", "knn"])
def test_torch_cuda_backend_matches_float64_at_a_non_square_size(wide, frames, scorer):  # noqa: F811
    from cfnc_edge.runtime.inspector import Inspector

    ref = float64_maps(wide[scorer], frames)
    for r, m in zip(Inspector(wide[scorer], "torch-cuda")(frames), ref):
        assert r.map.shape == HW
        assert np.abs(r.map - m).max() / np.abs(m).max() <= TOLERANCE


def test_gpu_maps_match_opencv_at_a_non_square_size(rng):
    from cfnc_edge.runtime.gpu.mahalanobis import gpu_anomaly_maps
    from cfnc_edge.runtime.postprocess import anomaly_maps

    dist = (rng.random((2, 16, 40)) * 4 + 1).astype(np.float32)
    a, r = 0.3, HW[1] / HW[0]
    thetas = np.array([np.eye(2, 3), [[np.cos(a), -np.sin(a) / r, 0], [np.sin(a) * r, np.cos(a), 0]]], np.float32)
    np.testing.assert_allclose(cupy.asnumpy(gpu_anomaly_maps(dist, thetas, HW)), anomaly_maps(dist, thetas, HW),
                               rtol=1e-4, atol=1e-4)

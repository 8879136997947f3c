"""Non-square model inputs (64x160): every CPU backend against a float64
PyTorch reference, for both scorers; ICA's rotation is a true rotation of
the pixels; the GPU postprocessing code and the engine profile at (h, w)."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from cfnc_edge.bundle import Bundle
from cfnc_edge.deploy.engine import engine_shapes
from cfnc_edge.deploy.parity import brute_force_distances
from cfnc_edge.images import read_image
from cfnc_edge.model.alignment import ImageAlignment, ica_angle_degrees
from cfnc_edge.model.loading import load_model
from cfnc_edge.runtime.backends.openvino_backend import openvino_available
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.postprocess import anomaly_maps, anomaly_maps_ndimage, unwarp_matrix
from cfnc_edge.scoring.reference import reference_distance
from cfnc_edge.scoring.packing import unpack

HW = (64, 160)
# max |map - float64 map| / max |float64 map| for the fp32 backends (the export's feature tolerance)
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def wide(tiny_data, tmp_path_factory):
    """Exported 64x160 bundles: the Gaussian, and a memory bank on the same weights."""
    from cfnc_edge.api import refit, train
    from cfnc_edge.deploy.export import export
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    root = tmp_path_factory.mktemp("wide")
    gauss = train(tiny_data, root / "gaussian", ModelConfig(image_size=list(HW), feature_dim=16),
                  TrainConfig(steps=2, batch_size=4), progress=False)
    shutil.copytree(root / "gaussian", root / "knn", ignore=shutil.ignore_patterns("checkpoint"))
    knn = refit(root / "knn", tiny_data, scorer="knn", progress=False)
    for b in (gauss, knn):
        export(b, log=lambda m: None)
    return {"gaussian": Bundle.open(root / "gaussian"), "knn": Bundle.open(root / "knn")}


@pytest.fixture(scope="module")
def frames(tiny_data):
    return [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:3]]


def float64_maps(bundle: Bundle, frames) -> np.ndarray:
    """The reference: the model in float64, float64 distances, the same postprocessing."""
    from cfnc_edge.images import preprocess

    model = load_model(bundle).double()
    with torch.inference_mode():
        feats, thetas = (t.numpy() for t in model(torch.from_numpy(preprocess(frames, HW))))
    b, c, h, w = feats.shape
    if bundle.scorer == "knn":
        bank = bundle.scorer_tensors()
        dist = brute_force_distances(feats, bank["bank"], bank["center"])
    else:
        g = bundle.scorer_tensors()
        dist = reference_distance(unpack(g["factor"].astype(np.float64), c), g["mean"],
                                  feats.reshape(b, c, h * w)).reshape(b, h, w)
    return anomaly_maps(dist, thetas, HW)


@pytest.mark.parametrize("scorer", ["gaussian", "knn"])
def test_every_cpu_backend_matches_float64_at_a_non_square_size(wide, frames, scorer):
    bundle = wide[scorer]
    assert bundle.model_config["image_size"] == list(HW)
    ref = float64_maps(bundle, frames)
    backends = ["torch", "onnxruntime"] + (["openvino"] if openvino_available() else [])
    for name in backends:
        insp = Inspector(bundle, name)
        assert insp.image_size == HW
        got = insp(frames)
        for r, m in zip(got, ref):
            assert r.map.shape == HW and r.full_map().shape == (96, 96)
            err = np.abs(r.map - m).max() / np.abs(m).max()
            assert err <= TOLERANCE, f"{name}: {err:.2e}"


def test_feature_grid_is_h_by_w_over_the_stride(wide):
    from cfnc_edge.runtime.backends import create_backend

    batch = np.zeros((2, 3, *HW), np.uint8)
    for scorer, hw in (("gaussian", (16, 40)), ("knn", (8, 20))):
        feats, thetas = create_backend(wide[scorer], "onnxruntime")(batch)
        assert feats.shape[-2:] == hw and thetas.shape == (2, 2, 3)
    assert wide["gaussian"].manifest["gaussian"]["positions"] == 16 * 40


def test_engine_profile_is_the_bundles_h_by_w(wide):
    assert engine_shapes(wide["gaussian"], 1, 8, 32) == [(1, 3, *HW), (8, 3, *HW), (32, 3, *HW)]


def _smooth_image(rng, h, w):
    img = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3)
    return (img - img.min()) / np.ptp(img)


@pytest.mark.parametrize("hw", [(40, 100), (100, 40), (48, 48)])
@pytest.mark.parametrize("degrees", [-17.0, 9.0])
def test_ica_rotates_the_pixels_of_a_non_square_image(rng, hw, degrees):
    """ICA with its angle set by hand against cv2.warpAffine's rotation about the image centre."""
    h, w = hw
    ica = ImageAlignment(in_channels=1, size=hw)
    with torch.no_grad():
        ica.loc.fc[2].bias.fill_(np.radians(degrees))  # weights are zero: the angle is the bias
    img = _smooth_image(rng, h, w)
    out, theta = ica(torch.from_numpy(img)[None, None])
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    rot = np.array([[c, -s], [s, c]])  # output pixel p samples the input at centre + rot (p - centre)
    m = np.hstack([rot, (centre - rot @ centre)[:, None]])
    ref = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(6, h - 6), slice(6, w - 6))  # border handling differs by half a pixel
    np.testing.assert_allclose(out[0, 0].detach().numpy()[inner], ref[inner], atol=2e-3)
    assert ica_angle_degrees(theta.detach().numpy()) == pytest.approx([degrees], abs=1e-4)
    # the map's unwarp is the inverse rotation, in pixels
    back = unwarp_matrix(theta[0].detach().numpy(), hw)
    np.testing.assert_allclose(back[:, :2], rot.T, atol=1e-6)
    np.testing.assert_allclose(back @ np.append(centre, 1), centre, atol=1e-6)


def test_gpu_postprocess_code_matches_opencv_at_a_non_square_size(rng):
    """The code the GPU runs (with CuPy) reproduces the CPU's maps at (h, w), rotation and the
    template search's shift included."""
    dist = (rng.random((3, 16, 40)) * 4 + 1).astype(np.float32)
    a, r = 0.3, HW[1] / HW[0]
    theta = np.array([[np.cos(a), -np.sin(a) / r, 0.0], [np.sin(a) * r, np.cos(a), 0.0]], np.float32)
    shifted = theta + np.array([[0, 0, 0.12], [0, 0, -0.08]], np.float32)
    thetas = np.stack([np.eye(2, 3, dtype=np.float32), theta, shifted])
    ref = anomaly_maps(dist, thetas, HW)
    assert ref.shape == (3, *HW)
    np.testing.assert_allclose(anomaly_maps_ndimage(dist, thetas, HW), ref, rtol=1e-5, atol=1e-5)

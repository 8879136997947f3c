"""ICA's template search: known rotations and shifts of a synthetic posed part are
recovered, a texture stays at identity, the search exports to ONNX, and the
anomaly map is carried back onto the input frame through rotation and shift."""

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from cfnc_edge.data.synthetic import render_good
from cfnc_edge.deploy.export import to_onnx
from cfnc_edge.images import preprocess
from cfnc_edge.model.alignment import ImageAlignment, ica_angle_degrees, warp
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.runtime.postprocess import unwarp

S = 96
TOLERANCE_DEG = 5.0  # 10-degree search steps, refined by parabolic interpolation
TOLERANCE_PX = 3.0  # of a 96 px input: the search runs on 44 px


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def _as_ica_input(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(preprocess(frames, S)).float() / 255


@pytest.fixture(scope="module")
def fitted() -> ImageAlignment:
    rng = np.random.default_rng(0)
    good = [_u8(render_good(rng, S, max_rotation=180.0)[0]) for _ in range(40)]
    ica = ImageAlignment(size=(S, S))
    info = ica.fit_template([_as_ica_input(good)])
    assert info["fitted"] and info["confident_share"] > 0.8
    return ica


def _posed(angle_deg: float, shift_px=(0.0, 0.0)) -> np.ndarray:
    """The same part (one seed) rotated by angle_deg (counter-clockwise on screen) and shifted."""
    img, _ = render_good(np.random.default_rng(7), S, max_rotation=0.0, max_shift=0.0)
    m = cv2.getRotationMatrix2D((S / 2, S / 2), angle_deg, 1.0)
    m[:, 2] += shift_px
    return _u8(cv2.warpAffine(img, m, (S, S), borderMode=cv2.BORDER_REPLICATE))


def _part_centre(theta: np.ndarray) -> np.ndarray:
    """Where in the input (pixels) the aligned frame's centre came from: the part's centre."""
    return (theta[:, 2] + 1) * S / 2


def test_recovers_known_rotations_and_shifts_over_the_full_circle(fitted):
    angles = np.array([0, 20, 45, 90, 135, 170, 180, 210, 260, 300, 345], float)
    shifts = [(0, 0), (8, -5), (-6, 9), (10, 10), (-9, -4), (0, 7), (5, 0), (-7, -8), (6, -9), (-10, 3), (3, 3)]
    x = _as_ica_input([_posed(a, s) for a, s in zip(angles, shifts)])
    with torch.no_grad():
        theta = fitted.theta(x).numpy()
    found = ica_angle_degrees(theta)
    # cv2 turns the part counter-clockwise on screen; ICA's angle turns the sampling
    # grid, so a part turned by a is found at (canonical - a): differences must match
    rel = (found - found[0]) + angles
    err = (rel + 180) % 360 - 180
    assert np.abs(err).max() < TOLERANCE_DEG, (found, err)
    centres = np.array([_part_centre(t) for t in theta])
    moved = centres - centres[0]
    assert np.abs(moved - np.array(shifts, float)).max() < TOLERANCE_PX, moved


def test_aligned_parts_match_each_other(fitted):
    """The point of ICA: after it, parts in different poses overlap."""
    x = _as_ica_input([_posed(a, s) for a, s in ((0, (0, 0)), (150, (7, -6)), (250, (-8, 5)))])
    with torch.no_grad():
        aligned, _ = fitted(x)
    inner = (slice(20, 76), slice(20, 76))
    before = (x[1:] - x[:1]).abs()[..., inner[0], inner[1]].mean()
    after = (aligned[1:] - aligned[:1]).abs()[..., inner[0], inner[1]].mean()
    assert after < 0.35 * before, (float(before), float(after))


def test_texture_stays_at_identity():
    """Stripes and noise have no pose: the fit leaves the search unfitted and ICA is the identity."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:S, 0:S]
    frames = []
    for _ in range(30):
        stripes = 120 + 40 * np.sin(xx * rng.uniform(0.5, 0.7) + rng.uniform(0, 6)) + rng.normal(0, 12, (S, S))
        frames.append(_u8(np.repeat(stripes[:, :, None], 3, 2)))
    ica = ImageAlignment(size=(S, S))
    assert not ica.fit_template([_as_ica_input(frames)])["fitted"]
    with torch.no_grad():
        theta = ica.theta(_as_ica_input(frames)).numpy()
    np.testing.assert_allclose(theta, np.broadcast_to(np.eye(2, 3), theta.shape), atol=1e-6)


def test_unfitted_and_loaded_models_keep_their_template(fitted):
    """The template is in the weights: a model loaded from a state without one (a bundle written before
    templates) is unfitted, one loaded from a fitted state searches the same."""
    fresh = ImageAlignment(size=(S, S))
    old = {k: v for k, v in fitted.state_dict().items() if "search" not in k}
    fresh.load_state_dict(old)
    assert not fresh.search.fitted
    fresh.load_state_dict(fitted.state_dict())
    x = _as_ica_input([_posed(123.0)])
    with torch.no_grad():
        torch.testing.assert_close(fresh.theta(x), fitted.theta(x))


def test_unwarp_carries_a_rotated_and_shifted_map_back(fitted):
    """A map drawn on the part in the input frame, warped into the aligned frame and unwarped, comes back."""
    frame = _posed(130.0, (6, -7))
    with torch.no_grad():
        theta = fitted.theta(_as_ica_input([frame]))
    spot = np.zeros((S, S), np.float32)
    cv2.circle(spot, (50, 40), 6, 1.0, -1)
    aligned = warp(torch.from_numpy(spot)[None, None], theta)[0, 0].numpy()
    back = unwarp(aligned, theta[0].numpy())
    assert np.abs(aligned - spot).sum() > 0.5 * spot.sum()  # the warp moved it
    assert np.abs(back - spot).sum() < 0.25 * spot.sum()


def test_onnx_export_of_a_fitted_template_matches_torch(fitted):
    model = CoarseToFine(ModelConfig(image_size=S, feature_dim=16, fca=False), pretrained=False).eval()
    model.ica.load_state_dict(fitted.state_dict())
    frames = np.stack([preprocess([_posed(a, (4, -3))], S)[0] for a in (0, 75, 190, 300)])
    with torch.no_grad():
        feats, theta = model(torch.from_numpy(frames))
    assert np.abs(ica_angle_degrees(theta.numpy())).max() > 20  # the search turned them
    proto = to_onnx(model, (S, S), {})
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    f_onnx, t_onnx = sess.run(["features", "theta"], {"images": frames})
    np.testing.assert_allclose(t_onnx, theta.numpy(), atol=1e-4)
    assert np.abs(f_onnx - feats.numpy()).max() / np.abs(feats.numpy()).max() < 1e-3


def test_alignment_picture_has_a_raw_and_an_aligned_row(fitted, tmp_path):
    from cfnc_edge.report.alignment_plot import plot_alignment

    model = CoarseToFine(ModelConfig(image_size=S, feature_dim=16, fca=False), pretrained=False).eval()
    model.ica.load_state_dict(fitted.state_dict())
    frames = np.stack([preprocess([_posed(a)], S)[0] for a in (0, 120, 240)])
    img = cv2.imread(str(plot_alignment(model, frames, tmp_path / "a.png", tile=64)))
    assert img.shape == (128, 3 * 64, 3)
    top, bottom = img[20:64].astype(float), img[84:128].astype(float)
    # the raw parts differ from each other; the aligned ones much less
    assert np.abs(bottom[:, 64:128] - bottom[:, :64]).mean() < 0.5 * np.abs(top[:, 64:128] - top[:, :64]).mean()

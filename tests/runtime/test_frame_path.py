"""The GPU frame path's code (runtime/frame_path.py) run on the CPU against the
Inspector's OpenCV/NumPy pipeline, for every scorer, square and non-square
model inputs and frames, with ICA's transform made a true rotation and shift
(different per frame) so the un-rotation is exercised.

Tolerances, relative to the largest value: 1e-5 on maps and scores where the
frames shrink or are at the model size (the resize is then cv2's to within
rare one-grey-level roundings: the rest is fp32 rounding); frames that are
enlarged differ from cv2's by one grey level in ~12% of pixels (fixed-point
weights, tests/runtime/test_resample.py), which the tiny untrained test
models turn into up to ~5% on maps and ~1% on scores: 0.1 and 0.02 there."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from cfnc_edge.bundle import Bundle
from cfnc_edge.images import read_image
from cfnc_edge.model.template_alignment import rotation_theta
from cfnc_edge.runtime.frame_path import cpu_frame_path, inverse_theta
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.scoring.loading import load_scorer

SCORERS = ("gaussian", "knn", "combined")
SIZES = {"square": 64, "wide": [64, 96]}
ANGLES = 0.3 * torch.cos(torch.arange(64) * 1.7)  # radians, one per frame of a batch (up to 64)
SHIFT = torch.tensor([[0.05, -0.03]])  # normalised


@pytest.fixture(scope="module")
def bundles(tiny_data, tmp_path_factory):
    """{(shape, scorer): bundle}: each shape trained once, refitted to the other scorers."""
    from cfnc_edge.api import refit, train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    root, out = tmp_path_factory.mktemp("frame-path"), {}
    for shape, size in SIZES.items():
        base = root / f"{shape}-gaussian"
        train(tiny_data, base, ModelConfig(image_size=size, feature_dim=16), TrainConfig(steps=2, batch_size=4),
              progress=False)
        out[shape, "gaussian"] = Bundle.open(base)
        for scorer in SCORERS[1:]:
            dest = root / f"{shape}-{scorer}"
            shutil.copytree(base, dest, ignore=shutil.ignore_patterns("checkpoint"))
            out[shape, scorer] = refit(dest, tiny_data, scorer=scorer, bank_size=0.25, progress=False)
    return out


@pytest.fixture(scope="module")
def frames(tiny_data):
    return [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:3]]


def rotating(model, size):
    """ICA made to return a rotation and shift per frame (the tiny model's is near identity)."""
    aspect = size[1] / size[0]
    # on the model's device beforehand: a copy inside a CUDA graph capture would be an error
    device = next(model.parameters()).device
    angles, shift = ANGLES.to(device), SHIFT.to(device)
    model.ica.theta = lambda x: rotation_theta(angles[:len(x)], aspect, shift.expand(len(x), 2))
    return model


def frames_at(frames, hw):
    return [cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for f in frames]


def compare(bundle, frames):
    """(max relative map difference, max relative score difference) of the frame path against the Inspector."""
    insp = Inspector(bundle, "torch")
    path = cpu_frame_path(rotating(insp.backend.model, insp.image_size), load_scorer(bundle), insp.image_size)
    ref = insp(frames)
    ref_maps, ref_scores = np.stack([r.map for r in ref]), np.array([r.score for r in ref])
    with torch.inference_mode():
        scores, maps = (t.numpy() for t in path(torch.from_numpy(np.stack(frames))))
    assert maps.shape == ref_maps.shape and scores.shape == ref_scores.shape
    return (np.abs(maps - ref_maps).max() / np.abs(ref_maps).max(),
            np.abs(scores - ref_scores).max() / np.abs(ref_scores).max())


@pytest.mark.parametrize("scorer", SCORERS)
@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("frame_hw", [(96, 96), (80, 120), None])  # None: at the model's size
def test_frame_path_matches_the_inspector(bundles, frames, shape, scorer, frame_hw):
    bundle = bundles[shape, scorer]
    hw = frame_hw or tuple(Inspector(bundle, "torch").image_size)
    maps, scores = compare(bundle, frames_at(frames, hw))
    assert maps <= 1e-5 and scores <= 1e-5


@pytest.mark.parametrize("scorer", SCORERS)
def test_frame_path_matches_the_inspector_on_enlarged_frames(bundles, frames, scorer):
    maps, scores = compare(bundles["wide", scorer], frames_at(frames, (50, 70)))
    assert maps <= 0.1 and scores <= 0.02


def test_the_rotation_is_not_the_identity(bundles, frames):
    """The parity above would hold trivially for identity transforms: check the patch takes."""
    from cfnc_edge.images import preprocess

    insp = Inspector(bundles["wide", "gaussian"], "torch")
    rotating(insp.backend.model, insp.image_size)
    theta = insp.backend(preprocess(frames, insp.image_size))[1]
    assert np.abs(theta[:, :, :2] - np.eye(2)).max() > 0.05


def test_inverse_theta_is_the_matrix_inverse(rng):
    theta = torch.from_numpy(rng.normal(size=(5, 2, 3))) + torch.eye(2, 3, dtype=torch.float64) * 2
    full = torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(5, 1, 3)], 1)
    np.testing.assert_allclose(inverse_theta(theta).numpy(), torch.linalg.inv(full)[:, :2].numpy(), atol=1e-12)


def test_cpu_backends_have_no_frame_path(bundles):
    assert Inspector(bundles["square", "gaussian"], "torch").frame_path is None


def test_a_second_call_makes_no_constants_as_inside_a_capture(bundles, frames):
    """What a capture relies on: after one call at a (batch, frame size), the same
    call makes no new tensors from the host (frozen() raises if it would);
    a size never seen is refused inside frozen(), not copied into the graph."""
    bundle = bundles["square", "combined"]
    insp = Inspector(bundle, "torch")
    path = cpu_frame_path(insp.backend.model, load_scorer(bundle), insp.image_size)
    batch = torch.from_numpy(np.stack(frames_at(frames, (96, 96))))
    with torch.inference_mode():
        first = path(batch)[0]
        with path.frozen():
            np.testing.assert_array_equal(path(batch)[0].numpy(), first.numpy())
            with pytest.raises(RuntimeError, match="before the capture"):
                path(torch.from_numpy(np.stack(frames_at(frames, (80, 120)))))


def test_batches_larger_than_the_bank_chunk(bundles, frames):
    """Batches are searched in chunks of BANK_BATCH images: 10 frames span two chunks."""
    maps, scores = compare(bundles["square", "knn"], frames_at(frames * 4, (96, 96))[:10])
    assert maps <= 1e-5 and scores <= 1e-5


def test_gpu_batches_are_captured_at_powers_of_two():
    """A stream's varying batches share a few captured graphs (runtime/gpu/frame_graph.py)."""
    from cfnc_edge.runtime.gpu.frame_graph import bucket

    assert [bucket(b) for b in (1, 2, 3, 5, 8, 9, 32, 33, 64)] == [1, 2, 4, 8, 8, 16, 32, 64, 64]

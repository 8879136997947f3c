"""OpenCV's resizes and blur as separable weight matrices (runtime/resample.py),
against cv2 itself on random images, on NumPy and through the frame path's
PyTorch code on the CPU.

Tolerances: frames (uint8) within one grey level of cv2, which works in
fixed point (11-bit linear weights) and rounds; shrinking by area differs in
well under 1% of pixels, enlarging (INTER_LINEAR) in about 12%. Float maps:
1e-5 of their range (fp32 rounding)."""

import cv2
import numpy as np
import pytest
import torch

from cfnc_edge.runtime.frame_path import FramePath
from cfnc_edge.runtime.resample import apply_separable, blur_matrix, frame_matrices, linear_matrix

# (frame (H, W), model (h, w)): area shrink square / non-square / odd / by exactly 2,
# linear enlarge, linear with one side shrinking, one side equal, tiny
CASES = [((480, 640), (224, 224)), ((97, 131), (64, 160)), ((449, 449), (224, 224)), ((448, 448), (224, 224)),
         ((33, 47), (64, 64)), ((50, 70), (64, 160)), ((300, 100), (64, 160)), ((96, 96), (64, 96)),
         ((7, 9), (3, 4)), ((1, 5), (3, 4)), ((64, 160), (64, 160))]


def opencv(frame, size):
    h, w = size
    area = frame.shape[0] > h and frame.shape[1] > w
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR), area


def check_frame(got, ref, area):
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    if ref.size >= 1000:  # a fraction of a few dozen pixels says nothing
        assert (diff > 0).mean() <= (0.01 if area else 0.15)


@pytest.mark.parametrize("frame_hw, size", CASES)
def test_frame_resize_matches_opencv_on_numpy(rng, frame_hw, size):
    frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    ref, area = opencv(frame, size)
    rows, cols = frame_matrices(frame_hw, size)
    got = np.floor(apply_separable(frame.transpose(2, 0, 1).astype(np.float64), rows, cols) + 0.5)
    check_frame(got.clip(0, 255).transpose(1, 2, 0), ref, area)


@pytest.mark.parametrize("frame_hw, size", CASES)
def test_frame_path_preprocess_matches_opencv_on_torch_cpu(rng, frame_hw, size):
    """The GPU frame path's own preprocessing (fp32 matrices, RGB order) run on CPU tensors."""
    frames = rng.integers(0, 256, (2, *frame_hw, 3), dtype=np.uint8)
    path = FramePath(None, {}, size, torch.device("cpu"))
    got = path.preprocess(torch.from_numpy(frames)).numpy()
    assert got.dtype == np.uint8 and got.shape == (2, 3, *size)
    for g, f in zip(got, frames):
        ref, area = opencv(f, size)
        check_frame(g.transpose(1, 2, 0), ref[:, :, ::-1], area)


def test_shrinking_by_an_integer_factor_is_the_exact_block_mean(rng):
    frame = rng.integers(0, 256, (8, 12), dtype=np.uint8).astype(np.float64)
    rows, cols = frame_matrices((8, 12), (4, 4))
    np.testing.assert_allclose(apply_separable(frame, rows, cols), frame.reshape(4, 2, 4, 3).mean((1, 3)))


@pytest.mark.parametrize("src, dst", [((14, 10), (64, 64)), ((16, 40), (64, 160)), ((30, 30), (17, 23))])
def test_linear_matrices_match_opencv_on_float_maps(rng, src, dst):
    m = rng.random(src).astype(np.float32) * 5
    ref = cv2.resize(m, dst[::-1], interpolation=cv2.INTER_LINEAR)
    got = apply_separable(m.astype(np.float64), linear_matrix(src[0], dst[0]), linear_matrix(src[1], dst[1]))
    np.testing.assert_allclose(got, ref, atol=5e-5)


@pytest.mark.parametrize("hw", [(64, 64), (64, 160), (10, 40), (1, 7)])
def test_blur_matrices_match_opencv_gaussian_blur(rng, hw):
    """Reflect-101 borders folded into the matrix, maps smaller than the 33 taps included."""
    m = rng.random(hw).astype(np.float32) * 5
    ref = cv2.GaussianBlur(m, (0, 0), 4.0)
    got = apply_separable(m.astype(np.float64), blur_matrix(hw[0], 4.0), blur_matrix(hw[1], 4.0))
    np.testing.assert_allclose(got, ref, atol=5e-5)

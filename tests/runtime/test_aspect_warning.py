"""A frame far from the model input's aspect is squashed to it without tiling:
the Inspector says so once (a 2000x100 frame was scored 3.8, not anomalous,
without a word), and not once per frame."""

import warnings

import numpy as np

from cfnc_edge.runtime.inspector import Inspector


def squash_warnings(insp, batches):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the Inspector's own once, not the warnings registry's
        for frames in batches:
            insp(frames)
    return [str(w.message) for w in caught if "squashed" in str(w.message)]


def test_a_frame_far_from_the_model_aspect_warns_once(tiny_bundle):
    wide = np.full((100, 2000, 3), 120, np.uint8)  # the tiny bundle's input is 64x64: 20x wider
    got = squash_warnings(Inspector(tiny_bundle, "torch"), [[wide], [wide, wide], [np.zeros((30, 900, 3), np.uint8)]])
    assert len(got) == 1
    assert got[0].startswith("a 2000x100 frame is squashed to the model input 64x64") and "--tile" in got[0]


def test_frames_within_twice_the_aspect_or_tiled_do_not_warn(tiny_bundle):
    near = [np.zeros((64, 128, 3), np.uint8), np.zeros((100, 50, 3), np.uint8), np.zeros((96, 96, 3), np.uint8)]
    assert squash_warnings(Inspector(tiny_bundle, "torch"), [near]) == []
    tiled = Inspector(tiny_bundle, "torch", tile="auto")
    assert squash_warnings(tiled, [[np.zeros((64, 640, 3), np.uint8)]]) == []

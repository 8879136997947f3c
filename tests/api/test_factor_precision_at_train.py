"""--factor-precision at train and fit time: the setting, its check against
fp32 and a threshold from scores in that precision, all in one commit."""

import shutil

import numpy as np
import pytest

from cfnc_edge import api
from cfnc_edge.bundle import GAUSSIAN, Bundle
from cfnc_edge.bundle.store import VERSIONS
from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.model.coarse_to_fine import ModelConfig
from cfnc_edge.model.train import TrainConfig
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.scoring.crossfit import FOLDS
from cfnc_edge.scoring.loading import load_scorer
from tests.conftest import TINY

# Image scores (and the threshold) of the int8 factor against fp32. The tiny
# bundle's factor (d = 16 from 12 images) is badly conditioned: int8 moves
# single distances by up to ~28% there (test_distance.py), but the image
# score, the maximum of the blurred map, moved by 0.12% at most (measured); on
# magnetic-tile (d = 100, 762 images) by 0.7%. 2% leaves room for the training
# run's own variation (the heads' initialisation is unseeded).
SCORE_RTOL = 2e-2
GAUSSIAN_RTOL = 1e-4  # the fp32 Gaussian refitted from the same weights: see the test


def test_train_with_int8_factor_writes_an_int8_bundle_in_one_commit(tiny_data, tmp_path):
    b = api.train(tiny_data, tmp_path / "b", ModelConfig(image_size=TINY, feature_dim=16),
                  TrainConfig(steps=3, batch_size=4), progress=False, factor_precision="int8")
    assert len(list((tmp_path / "b" / VERSIONS).iterdir())) == 1  # one commit, threshold included
    b = Bundle.open(tmp_path / "b")
    g = b.manifest["gaussian"]
    assert g["factor_precision"] == "int8" and g["factor_check"]["to"] == "int8"
    assert load_scorer(b)["factor"].dtype == np.int8
    # the fp32 reference: the same weights refitted with an fp32 factor (training
    # itself is not bit-reproducible: the SimSiam heads' initialisation is unseeded)
    shutil.copytree(tmp_path / "b", tmp_path / "fp32", symlinks=True)
    # with the folds a compressed factor's threshold is cross-fitted with (not leave-one-out): only the factor differs
    ref_bundle = api.refit(tmp_path / "fp32", tiny_data, progress=False, factor_precision="fp32", folds=FOLDS)
    # The refit repeats the same forward passes and fit, but BLAS chooses its
    # summation order by CPU and thread count: the tensors agree to rounding, not
    # to the bit (3e-7 apart on one machine). GAUSSIAN_RTOL is far below what the
    # int8 factor changes (percent), which is what this test tells apart.
    for k, v in b.tensors(GAUSSIAN).items():
        want = ref_bundle.tensors(GAUSSIAN)[k]
        np.testing.assert_allclose(v, want, rtol=GAUSSIAN_RTOL, atol=GAUSSIAN_RTOL * np.abs(want).max(), err_msg=k)
    insp, ref = Inspector(b, "torch"), Inspector(ref_bundle, "torch")
    assert insp.scoring.distance.precision == "int8" and ref.scoring.distance.precision == "fp32"
    frames = [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))]
    got, want = np.array([r.score for r in insp(frames)]), np.array([r.score for r in ref(frames)])
    np.testing.assert_allclose(got, want, rtol=SCORE_RTOL)
    assert not np.array_equal(got, want)  # the int8 factor is what scored
    # the threshold comes from cross-fitted scores with the int8 factor
    assert b.threshold != ref_bundle.threshold
    assert b.threshold == pytest.approx(ref_bundle.threshold, rel=SCORE_RTOL)


def test_fit_keeps_the_bundles_factor_precision_unless_told(exported, tiny_data, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(exported[0].path, dest, symlinks=True)
    api.set_factor_precision(dest, "fp16", log=lambda m: None)
    api.refit(dest, tiny_data, progress=False)
    assert Bundle.open(dest).manifest["gaussian"]["factor_precision"] == "fp16"
    api.refit(dest, tiny_data, progress=False, factor_precision="fp32")
    assert "factor_precision" not in Bundle.open(dest).manifest["gaussian"]


def test_factor_precision_needs_the_gaussian_scorer(tiny_data, tmp_path):
    with pytest.raises(CfncError, match="needs the gaussian scorer"):
        api.train(tiny_data, tmp_path / "b", scorer="knn", factor_precision="int8", progress=False)
    assert not (tmp_path / "b" / VERSIONS).exists()

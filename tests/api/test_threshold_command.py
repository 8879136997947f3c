"""`cfnc-edge threshold`: the threshold from good images training did not see."""

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from cfnc_edge.api import InspectOptions, refit, set_threshold, train
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.model.coarse_to_fine import ModelConfig
from cfnc_edge.model.train import TrainConfig
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.scoring.threshold import threshold_for_fpr
from tests.conftest import TINY


@pytest.fixture
def bundle_dir(tiny_bundle, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, dest, symlinks=True)
    return dest


def test_the_threshold_is_the_order_statistic_of_the_unseen_good_images_scores(bundle_dir, tiny_data):
    good = sorted((tiny_data / "test" / "good").iterdir())
    plot = (bundle_dir / "training.png").read_bytes()
    info = set_threshold(bundle_dir, [tiny_data / "test" / "good"], target_fpr=0.25, inspection=InspectOptions(backend="torch"),
                         progress=False)  # 4 images can hold 25% (they would need 99 for 1%)
    scores = np.array([r.score for r in Inspector(Bundle.open(bundle_dir), "torch")([read_image(p) for p in good])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = threshold_for_fpr(scores, 0.25)
    assert info["value"] == pytest.approx(want["value"], rel=1e-6) and info["n"] == 4
    b = Bundle.open(bundle_dir)
    assert b.threshold == info["value"] and b.manifest["threshold"]["method"] == "held-out images"
    assert b.manifest["threshold"]["target_fpr"] == 0.25
    assert (bundle_dir / "training.png").read_bytes() != plot  # redrawn with the new threshold


def test_cli_threshold_by_hand_and_bad_input(bundle_dir, tiny_data, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "cfnc_edge", "threshold", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, timeout=600)
    r = run(tiny_data / "test" / "good", "--bundle", bundle_dir, "--threshold", "3.5")
    assert r.returncode == 0, r.stderr
    t = Bundle.open(bundle_dir).manifest["threshold"]
    assert t["value"] == 3.5 and t["user_set"] and 0 <= t["good_above"] <= 1
    assert "threshold 3.500 set by hand" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run(tmp_path / "empty", "--bundle", bundle_dir)
    assert r.returncode != 0 and "holds no images" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(CfncError, match="--target-fpr must be"):
        set_threshold(bundle_dir, [tiny_data / "test" / "good"], target_fpr=1.5)


def test_training_the_backbone_with_the_warps_warns_that_the_cross_fitted_threshold_is_optimistic(tiny_data, tmp_path):
    with pytest.warns(RuntimeWarning, match="backbone and the alignment modules were trained"):
        train(tiny_data, tmp_path / "a", ModelConfig(image_size=TINY, feature_dim=8), TrainConfig(steps=2, batch_size=4),
              progress=False)
    with pytest.warns(RuntimeWarning, match="backbone and the alignment modules were trained"):  # refit cross-fits
        refit(tmp_path / "a", tiny_data, progress=False)
    # either one trained alone kept its threshold on magnetic-tile (0.5% for 2.0%): no warning
    for name, model, cfg in [("frozen", ModelConfig(image_size=TINY, feature_dim=8), {"lr_backbone": 0.0}),
                             ("no-warps", ModelConfig(image_size=TINY, feature_dim=8, ica=False, fca=False), {})]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(tiny_data, tmp_path / name, model, TrainConfig(steps=2, batch_size=4, **cfg), progress=False)
        assert not [w for w in caught if "alignment modules were trained" in str(w.message)], name


def test_fine_levels_are_checked_through_the_api_too(tiny_data, tmp_path):
    with pytest.raises(CfncError, match="--fine-levels must be distinct pyramid levels"):
        train(tiny_data, tmp_path / "b", ModelConfig(image_size=TINY, feature_dim=8),
              TrainConfig(steps=2, fine_levels=()), progress=False)
    assert not (tmp_path / "b" / "versions").exists()

"""train, fit, export and calibrate as transactions: the bundle folder as a
killed process would leave it before each file-system step opens with the old
complete state or the new one; an interrupt or a bad option changes nothing."""

import shutil

import pytest

from cfnc_edge import api
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.model.coarse_to_fine import ModelConfig
from cfnc_edge.model.train import TrainConfig

QUIET = {"log": lambda m: None}


@pytest.fixture
def bundle_copy(exported, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(exported[0].path, dest, symlinks=True)
    return dest


def assert_old_or_new(snaps, old, new, faults):
    assert len(snaps) > 5
    states = {str(faults.state_of(s)) for s in snaps}
    assert states <= {str(old), str(new)} and str(old) in states


def test_train_into_an_existing_bundle(bundle_copy, tiny_data, tmp_path, faults):
    old = faults.state_of(bundle_copy)
    snaps = faults.snapshots_during(bundle_copy, lambda: api.train(
        tiny_data, bundle_copy, ModelConfig(image_size=64, feature_dim=8), TrainConfig(epochs=0, batch_size=4),
        threshold=123.0, progress=False), tmp_path / "snaps")
    new = faults.state_of(bundle_copy)
    assert new[2]["value"] == 123.0 and set(new[1]) == {"weights.safetensors", "gaussian.safetensors"}
    assert_old_or_new(snaps, old, new, faults)


def test_refit(bundle_copy, tiny_data, tmp_path, faults):
    old = faults.state_of(bundle_copy)
    snaps = faults.snapshots_during(bundle_copy, lambda: api.refit(bundle_copy, tiny_data, covariance="eps", eps=0.05,
                                                                        progress=False),
                                    tmp_path / "snaps")
    new = faults.state_of(bundle_copy)
    assert new[1]["gaussian.safetensors"] != old[1]["gaussian.safetensors"]
    assert_old_or_new(snaps, old, new, faults)


def test_export(bundle_copy, tmp_path, faults):
    b = Bundle.open(bundle_copy)
    b.write({}, onnx={"stale": True})  # so that the new state differs
    old = faults.state_of(bundle_copy)
    snaps = faults.snapshots_during(bundle_copy, lambda: api.export(bundle_copy, **QUIET), tmp_path / "snaps")
    new = faults.state_of(bundle_copy)
    assert_old_or_new(snaps, old, new, faults)


def test_calibrate(bundle_copy, tmp_path, faults):
    old = faults.state_of(bundle_copy)
    snaps = faults.snapshots_during(bundle_copy, lambda: api.calibrate(bundle_copy, n=4, method="minmax", **QUIET),
                                    tmp_path / "snaps")
    new = faults.state_of(bundle_copy)
    assert new[1]["model-int8.onnx"] != old[1]["model-int8.onnx"]
    assert_old_or_new(snaps, old, new, faults)


def test_an_interrupt_while_the_threshold_is_set_keeps_the_old_bundle(bundle_copy, tiny_data, monkeypatch, faults):
    """Before: train replaced the weights, then SIGINT during threshold scoring
    left a bundle without a threshold (verdicts null)."""
    old = faults.state_of(bundle_copy)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cfnc_edge.scoring.threshold.threshold_for_fpr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.train(tiny_data, bundle_copy, ModelConfig(image_size=64, feature_dim=8),
                  TrainConfig(epochs=0, batch_size=4), progress=False)
    assert str(faults.state_of(bundle_copy)) == str(old)
    assert not list((bundle_copy / "versions").glob(".staging*"))


@pytest.mark.parametrize("option", [{"target_fpr": 1.5}, {"threshold": float("nan")}, {"threshold": -5.0},
                                    {"eps": -1.0}, {"folds": 1}])
def test_a_bad_option_is_refused_before_training_and_changes_nothing(bundle_copy, tiny_data, faults, option):
    old = faults.state_of(bundle_copy)
    with pytest.raises(CfncError, match=f"--{next(iter(option)).replace('_', '-')} must be"):
        api.train(tiny_data, bundle_copy, ModelConfig(image_size=64, feature_dim=8),
                  TrainConfig(epochs=1, batch_size=4), progress=False, **option)
    assert str(faults.state_of(bundle_copy)) == str(old)

import numpy as np
import pytest
import torch

from cfnc_edge.data.training_set import load_images
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig, semi_orthogonal
from cfnc_edge.model.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def images(tiny_data):
    return torch.from_numpy(load_images(sorted((tiny_data / "train" / "good").glob("*.png")), 64, progress=False))


def small_model(**kw):
    torch.manual_seed(0)
    return CoarseToFine(ModelConfig(image_size=64, feature_dim=16, **kw))


def test_model_output_shapes():
    feats, theta = small_model()(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert feats.shape == (2, 16, 16, 16) and theta.shape == (2, 2, 3)


def test_projection_is_semi_orthogonal_and_reproducible():
    p = semi_orthogonal(10, 30, seed=3)
    np.testing.assert_allclose(p @ p.T, np.eye(10), atol=1e-6)
    assert torch.equal(p, semi_orthogonal(10, 30, seed=3))


def test_ablation_switches_remove_modules_and_losses(images):
    m = small_model(ica=False, fca=False)
    assert m.ica is None and m.fca is None
    t = Trainer(m, TrainConfig(noncontrastive=False))
    assert not t.trainable  # the PaDiM baseline: nothing to train
    t = Trainer(small_model(ica=False), TrainConfig())
    _, parts = t.loss(images[:4])
    assert set(parts) == {"fine", "encoder_std"}
    t = Trainer(small_model(), TrainConfig(noncontrastive=False))
    _, parts = t.loss(images[:4])
    assert set(parts) == {"ica", "ica_angle_deg"}


def test_pretrained_parts_keep_the_paper_lr_and_heads_get_simsiams():
    t = Trainer(small_model(), TrainConfig(batch_size=64))
    lrs = [g["lr"] for g in t.opt.param_groups]
    assert lrs == [1e-4, 0.01, 0.05, 0.05]  # backbone+FCA, ICA, encoder, predictor
    assert [g["decay"] for g in t.opt.param_groups] == [True, True, True, False]  # fixed predictor lr
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-5 for g in t.opt.param_groups)
    assert [g["lr"] for g in Trainer(small_model(), TrainConfig(lr_heads=0.3)).opt.param_groups][2:] == [0.3, 0.3]


def test_budget_is_in_steps_and_epochs_convert():
    assert TrainConfig(steps=7).total_steps(50) == 7
    assert TrainConfig(epochs=3, batch_size=16).total_steps(50) == 9  # 3 full batches per pass
    assert TrainConfig(epochs=2, batch_size=32).total_steps(10) == 2  # batch capped at the image count


def test_fine_loss_falls_on_a_tiny_synthetic_run(images):
    """The heads must learn: at the paper's lr 1e-4 for everything the dense
    loss stayed near 0 (issue 9). Fine loss only (no ICA), 60 steps of 4 images."""
    t = Trainer(small_model(ica=False), TrainConfig(steps=60, batch_size=4))
    hist = t.fit(images, progress=False)
    first, last = hist[0]["fine"], hist[-1]["fine"]
    assert last < first - 0.2 and last < -0.3, (first, last)
    assert all(0.1 < h["encoder_std"] for h in hist)  # and without collapsing


def test_collapse_stops_training_and_restores_healthy_weights(images):
    m = small_model(ica=False)
    t = Trainer(m, TrainConfig(steps=4, batch_size=4))
    healthy = {k: v.clone() for k, v in m.state_dict().items()}
    t._healthy = (2, healthy)
    record = {"encoder_std": 0.01}
    with pytest.warns(RuntimeWarning, match="weights of step 2 restored"):
        assert t._collapsed(record)
    assert record["collapsed"] and record["restored_step"] == 2
    for k, v in m.state_dict().items():
        assert torch.equal(v, healthy[k]), k


def test_a_collapse_at_the_first_report_restores_the_starting_weights(images, monkeypatch):
    """Before any healthy report there is still something to restore: the weights training started from."""
    import cfnc_edge.model.train as train_mod

    m = small_model(ica=False)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    monkeypatch.setattr(train_mod, "COLLAPSE_STD", 1e9)  # every report counts as collapsed
    t = Trainer(m, TrainConfig(steps=6, batch_size=4))
    with pytest.warns(RuntimeWarning, match="weights of step 0 restored"):
        hist = t.fit(images, progress=False)
    assert hist[-1]["collapsed"] and hist[-1]["restored_step"] == 0
    for k, v in m.state_dict().items():
        assert torch.equal(v, start[k]), k


def test_training_changes_alignment_and_backbone(images):
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    Trainer(m, TrainConfig(steps=3, batch_size=4)).fit(images, progress=False)
    after = m.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"ica", "fca", "stages"} <= changed


def test_lr_backbone_zero_trains_the_alignment_and_leaves_the_backbone_as_it_was(images):
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    Trainer(m, TrainConfig(steps=3, batch_size=4, lr_backbone=0.0)).fit(images, progress=False)
    after = m.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"ica", "fca"}
    assert torch.equal(before["projection"], after["projection"])  # fixed, never trained


def test_checkpoint_round_trip_continues_identically(images, tmp_path):
    """Interrupt at step 3 of 6 (via a checkpoint), resume: same weights as straight through."""
    cfg = TrainConfig(steps=6, batch_size=4)
    straight = small_model()
    Trainer(straight, cfg).fit(images, progress=False)

    interrupted = small_model()
    t = Trainer(interrupted, cfg)
    calls = {"n": 0}
    original = t.loss

    def stop_in_epoch_two(batch, step=0):
        if step == 3:  # 3 steps per epoch: the first step of epoch 2
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(batch, step)

    t.loss = stop_in_epoch_two
    with pytest.raises(KeyboardInterrupt):
        t.fit(images, tmp_path, progress=False)
    assert calls["n"] == 3

    resumed = small_model()
    t2 = Trainer(resumed, cfg)
    t2.load_checkpoint(tmp_path)
    assert t2.step == 3
    t2.fit(images, tmp_path, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_bundle_carries_training_evidence_and_a_crossfitted_threshold(tiny_bundle):
    m = tiny_bundle.manifest
    assert m["gaussian"]["covariance"] == "ledoit-wolf" and 0 < m["gaussian"]["shrinkage_mean"] <= 1
    assert m["history"] and {"step", "fine", "ica", "encoder_std", "ica_angle_mean"} <= set(m["history"][-1])
    t = m["threshold"]
    assert t["n"] == 12 and t["target_fpr"] == 0.01 and "warning" in t  # 12 images cannot hold 1% by rank
    assert t["tail"]["model"] == "gumbel" and t["value"] > t["good_mean"]  # the tail, extrapolated
    assert len(t["good_scores"]) == 12 and t["good_scores"] == sorted(t["good_scores"])
    c = m["compactness"]
    assert c["heldout_mean_distance"] > 0 and sum(c["ica_angles"]["histogram"]) == 12
    png = tiny_bundle.path / "training.png"
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 900


def test_refit_keeps_the_estimator_unless_asked_and_rethresholds(tiny_bundle, tiny_data, tmp_path):
    import shutil

    from cfnc_edge.api import refit

    shutil.copytree(tiny_bundle.path, tmp_path / "b")
    with pytest.warns(RuntimeWarning, match="cannot hold"):
        b = refit(tmp_path / "b", tiny_data, covariance="oas", target_fpr=0.05, progress=False)
    assert b.manifest["gaussian"]["covariance"] == "oas"
    assert b.manifest["threshold"]["target_fpr"] == 0.05
    plot = (tmp_path / "b" / "training.png").read_bytes()
    with pytest.warns(RuntimeWarning, match="cannot hold"):
        b = refit(tmp_path / "b", tiny_data, covariance="eps", progress=False)
    assert b.manifest["threshold"]["target_fpr"] == 0.05  # the bundle's rate, not the default 1%
    assert (tmp_path / "b" / "training.png").read_bytes() != plot  # redrawn with the new threshold
    b = refit(tmp_path / "b", tiny_data, threshold=3.5, target_fpr=0.1, progress=False)
    assert b.manifest["gaussian"]["covariance"] == "eps" and b.threshold == 3.5
    assert b.manifest["threshold"]["user_set"] and "expected_fpr" not in b.manifest["threshold"]

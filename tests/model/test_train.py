import numpy as np
import pytest
import torch

from cfnc_edge.api.training import split_holdout
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig, semi_orthogonal
from cfnc_edge.model.train import TrainConfig, Trainer, load_images


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
    assert set(parts) == {"fine"}
    t = Trainer(small_model(), TrainConfig(noncontrastive=False))
    _, parts = t.loss(images[:4])
    assert set(parts) == {"ica"}


def test_optimiser_uses_the_paper_learning_rates():
    t = Trainer(small_model(), TrainConfig())
    lrs = sorted(g["lr"] for g in t.opt.param_groups)
    assert lrs == [1e-4, 0.01]
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-5 for g in t.opt.param_groups)


def test_training_changes_alignment_and_backbone(images):
    m = small_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    Trainer(m, TrainConfig(epochs=1, batch_size=4)).fit(images, progress=False)
    after = m.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"ica", "fca", "stages"} <= changed
    assert torch.equal(before["projection"], after["projection"])  # fixed, never trained


def test_checkpoint_round_trip_continues_identically(images, tmp_path):
    """Interrupt after epoch 1 of 2 (via a checkpoint), resume: same weights as straight through."""
    cfg = TrainConfig(epochs=2, batch_size=4)
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
    assert (t2.epoch, t2.step_in_epoch) == (1, 0)
    t2.fit(images, tmp_path, progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_holdout_split_is_disjoint_and_deterministic(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(20)]
    fit, held = split_holdout(paths, 0.1, seed=0)
    assert len(held) == 2 and not set(fit) & set(held) and len(fit) + len(held) == 20
    assert split_holdout(paths, 0.1, seed=0) == (fit, held)

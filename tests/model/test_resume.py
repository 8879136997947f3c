"""Resume: the resumed epoch's loss, and corrupt checkpoints refused up front."""

import json

import pytest
import torch

from cfnc_edge.data.training_set import load_images
from cfnc_edge.errors import CheckpointError
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.train import (
    TrainConfig,
    Trainer,
    read_checkpoint_config,
)


@pytest.fixture(scope="module")
def images(tiny_data):
    return torch.from_numpy(load_images(sorted((tiny_data / "train" / "good").glob("*.png")), 64, progress=False))


def small_model():
    torch.manual_seed(0)
    return CoarseToFine(ModelConfig(image_size=64, feature_dim=16))


def interrupted_run(images, folder, at_step):
    t = Trainer(small_model(), TrainConfig(steps=42, batch_size=4))
    original = t.loss

    def stop(batch, step=0):
        if step == at_step:
            raise KeyboardInterrupt
        return original(batch, step)

    t.loss = stop
    with pytest.raises(KeyboardInterrupt):
        t.fit(images, folder, progress=False)


@pytest.fixture(scope="module")
def checkpoint(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    interrupted_run(images, folder, at_step=4)  # reports every 3 steps: inside the second report
    return folder


def test_resumed_epoch_reports_the_loss_of_all_its_steps(images, checkpoint):
    """Before the fix the resumed report divided the sum of its last steps by all of its steps."""
    straight = Trainer(small_model(), TrainConfig(steps=42, batch_size=4)).fit(images, progress=False)
    t = Trainer(small_model(), TrainConfig(steps=42, batch_size=4))
    t.load_checkpoint(checkpoint)
    assert t.step == 4 and t.window["count"] == 1  # interrupted inside a report window
    resumed = t.fit(images, None, progress=False)
    for a, b in zip(straight, resumed):
        for key in ("ica", "fine"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (a, b)


@pytest.mark.parametrize("damage", ["truncated state", "state not a dict", "unknown setting",
                                    "flipped tensor byte", "tensors missing"])
def test_corrupt_checkpoint_is_refused_with_one_clear_error(checkpoint, tmp_path, damage):
    import shutil

    folder = tmp_path / "c"
    shutil.copytree(checkpoint, folder)
    state, tensors = folder / "train_state.json", folder / "train.safetensors"
    if damage == "truncated state":
        state.write_text(state.read_text()[:40])
    elif damage == "state not a dict":
        state.write_text("[1, 2]")
    elif damage == "unknown setting":
        s = json.loads(state.read_text())
        s["model"]["wings"] = 2
        state.write_text(json.dumps(s))
    elif damage == "flipped tensor byte":
        data = bytearray(tensors.read_bytes())
        data[-10] ^= 0xFF
        tensors.write_bytes(bytes(data))
    else:
        tensors.unlink()
    with pytest.raises(CheckpointError, match="train without --resume"):
        read_checkpoint_config(folder)


def test_train_refuses_a_corrupt_checkpoint_before_any_work(tiny_data, checkpoint, tmp_path):
    import shutil

    from cfnc_edge.api import train

    out = tmp_path / "b"
    shutil.copytree(checkpoint, out / "checkpoint")
    (out / "checkpoint" / "train_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is unreadable"):
        train(tiny_data, out, resume=True, progress=False)
    assert not (out / "current").exists()

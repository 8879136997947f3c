import os
import shutil
from contextlib import contextmanager

import numpy as np
import pytest

from cfnc_edge.bundle import Bundle
from cfnc_edge.data import generate_dataset

TINY = 64  # model input size for tests: every stage runs, in seconds


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("data"), n_train=12, n_test_good=4, n_per_defect=2,
                            size=96, seed=1, progress=False)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_data, tmp_path_factory):
    import torch

    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    # api.train builds the model (ICA's and FCA's localisation nets draw their initial weights from
    # torch's global generator) before the Trainer seeds it: without this the session's bundle would
    # depend on what the tests before it (in pytest-randomly's order) left in that generator
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bundle")
    return train(tiny_data, out, ModelConfig(image_size=TINY, feature_dim=16),
                 TrainConfig(steps=3, batch_size=4), progress=False)


@pytest.fixture(scope="session")
def exported(tiny_bundle, tmp_path_factory):
    """A copy of the tiny bundle with fp32/fp16 ONNX models and an INT8 one."""
    from cfnc_edge.deploy.calibrate import calibrate
    from cfnc_edge.deploy.export import export

    dest = tmp_path_factory.mktemp("exported") / "b"
    shutil.copytree(tiny_bundle.path, dest, symlinks=True)
    b = Bundle.open(dest)
    report = export(b, log=lambda m: None)
    calibrate(b, n=8, log=lambda m: None)
    return Bundle.open(dest), report


def exported_copy(bundle, dest):
    """A copy of `bundle` at `dest`, exported (ONNX fp32/fp16): (the copy, export's parity report)."""
    from cfnc_edge.api import export

    shutil.copytree(bundle.path, dest)
    report = export(dest, log=lambda m: None)
    return Bundle.open(dest), report


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---- fault injection: the file-system steps of a bundle write ------------
FS_CHANGES = ("replace", "rename", "link", "symlink", "unlink", "rmdir", "mkdir")


@contextmanager
def before_each_fs_change(on_step):
    """Call on_step() before every file-system change of the block (os.replace,
    rename, link, symlink, unlink, rmdir, mkdir: what writes and commits are
    made of). Raising there is an interrupt at that step; copying the folder
    there is the state a killed process would leave."""
    busy = []

    def wrap(real):
        def changed(*args, **kwargs):
            if not busy:
                busy.append(True)
                try:
                    on_step()
                finally:
                    busy.pop()
            return real(*args, **kwargs)
        return changed

    with pytest.MonkeyPatch.context() as mp:
        for name in FS_CHANGES:
            mp.setattr(os, name, wrap(getattr(os, name)))
        yield


def state_of(path):
    """(revision, files, threshold) of the bundle at `path`, fully verified."""
    b = Bundle.open(path)
    return b.manifest.get("revision", {}).get("number"), b.manifest["files"], b.manifest.get("threshold")


def snapshots_during(root, run, dest):
    """Run `run()`, copying `root` before each of its file-system changes; the copies."""
    snaps = []

    def snap():
        if root.exists():
            snaps.append(dest / str(len(snaps)))
            shutil.copytree(root, snaps[-1], symlinks=True)

    with before_each_fs_change(snap):
        run()
    return snaps


@pytest.fixture
def faults():
    """The fault-injection helpers above, for tests in any folder."""
    from types import SimpleNamespace

    return SimpleNamespace(before_each_fs_change=before_each_fs_change, state_of=state_of,
                           snapshots_during=snapshots_during)

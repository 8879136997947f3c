import shutil

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
    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    out = tmp_path_factory.mktemp("bundle")
    return train(tiny_data, out, ModelConfig(image_size=TINY, feature_dim=16),
                 TrainConfig(steps=3, batch_size=4), progress=False)


@pytest.fixture(scope="session")
def exported(tiny_bundle, tmp_path_factory):
    """A copy of the tiny bundle with fp32/fp16 ONNX models and an INT8 one."""
    from cfnc_edge.deploy.calibrate import calibrate
    from cfnc_edge.deploy.export import export

    dest = tmp_path_factory.mktemp("exported") / "b"
    shutil.copytree(tiny_bundle.path, dest)
    b = Bundle.open(dest)
    report = export(b, log=lambda m: None)
    calibrate(b, n=8, log=lambda m: None)
    return Bundle.open(dest), report


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

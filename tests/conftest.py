import numpy as np
import pytest

from cfnc_edge.data import generate_dataset

TINY = 64  # model input size for tests: every stage runs, in seconds


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("data"), n_train=12, n_test_good=4, n_per_defect=2,
                            size=96, seed=1, progress=False)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_data, tmp_path_factory):
    from cfnc_edge.api import train
    from cfnc_edge.model import ModelConfig
    from cfnc_edge.train import TrainConfig

    out = tmp_path_factory.mktemp("bundle")
    return train(tiny_data, out, ModelConfig(image_size=TINY, feature_dim=16),
                 TrainConfig(epochs=1, batch_size=4), holdout=0.25, progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

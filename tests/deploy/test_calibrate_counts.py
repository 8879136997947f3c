"""INT8 calibration on any number of images, with every method.

ONNX Runtime's percentile and entropy calibrators stack the activations of
all calibration batches into one array: a last, partial batch (20 images in
batches of 8) made that array ragged and calibration fail.
"""

import numpy as np
import onnx
import pytest

from cfnc_edge.data.bundle_images import sample_images
from cfnc_edge.deploy.calibrate import METHODS, quantize
from cfnc_edge.deploy.export import onnx_path
from cfnc_edge.errors import CfncError


@pytest.fixture(scope="module")
def pool(exported):
    """50 distinct good-looking images: the bundle's own, flipped and shifted."""
    base = sample_images(exported[0], None, 12)
    variants = [base, base[..., ::-1], np.roll(base, 3, axis=-1), np.roll(base, -3, axis=-2), base[..., ::-1, :]]
    return np.ascontiguousarray(np.concatenate(variants)[:50])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("count", [1, 7, 20, 50])
def test_calibration_works_for_every_count_and_method(exported, pool, count, method):
    q = quantize(onnx_path(exported[0], "fp32"), pool[:count], method)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    onnx.checker.check_model(q)


def test_keep_of_a_stage_that_does_not_exist_is_refused(exported, pool):
    # a misspelt stage matched no node, so nothing was kept in float, silently
    with pytest.raises(CfncError, match=r"--keep stage\.1: no such backbone stage; give some of stages\.0, stages\.1"):
        quantize(onnx_path(exported[0], "fp32"), pool[:1], "minmax", ("stages.0", "stage.1"))

"""The keep-aspect rule of --image-size S, its parsing, and both manifest forms of image_size."""

import cv2
import numpy as np
import pytest

from cfnc_edge.api.validation import parse_image_size
from cfnc_edge.bundle import Bundle
from cfnc_edge.bundle.schema import validate
from cfnc_edge.data.aspect import keep_aspect, median_aspect
from cfnc_edge.data.training_set import input_size_for
from cfnc_edge.errors import BundleError, CfncError
from cfnc_edge.model.backbones import MAX_STRIDE


@pytest.mark.parametrize("ratio", [1.0, 0.8, 1.25, 1.1, 0.9])
def test_near_square_images_get_a_square(ratio):
    assert keep_aspect(224, ratio, 16) == (224, 224)


@pytest.mark.parametrize("ratio, hw", [
    (2.5, (224, 560)),  # 560 = 35 * 16 exactly
    (2.51, (224, 560)),  # 562.2 -> nearest multiple of 16
    (1.3, (224, 288)),  # 291.2 -> 288
    (1 / 2.5, (560, 224)),  # portrait: the height is the long side
    (1.26, (224, 288)),  # 282.2 -> 288: just outside the square band
])
def test_long_side_follows_the_ratio_rounded_to_the_stride(ratio, hw):
    got = keep_aspect(224, ratio, 16)
    assert got == hw and all(s % 16 == 0 for s in got)


def test_long_side_is_capped_at_four_short_sides_with_a_tiling_hint():
    lines = []
    assert keep_aspect(224, 6.0, 16, log=lines.append) == (224, 896)
    assert len(lines) == 1 and "--tile" in lines[0]
    assert keep_aspect(64, 1 / 10, 16, log=lines.append) == (256, 64)


def test_median_ratio_of_the_training_images(tmp_path):
    paths = []
    for i, (h, w) in enumerate([(100, 250), (100, 240), (100, 260), (100, 100)]):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.zeros((h, w, 3), np.uint8))
    assert median_aspect(paths) == pytest.approx(2.45)
    assert input_size_for(64, paths, MAX_STRIDE) == [64, 160]  # 156.8 -> 160
    assert input_size_for([64, 64], paths, MAX_STRIDE) == 64  # HxW as given; a square is written as S
    assert input_size_for([32, 96], paths, MAX_STRIDE) == [32, 96]


def test_image_size_option_parsing():
    assert parse_image_size("224") == 224
    assert parse_image_size("224x560") == [224, 560]
    assert parse_image_size("224X224") == [224, 224]
    for bad in ("abc", "224x", "10", "224x562", "1x2x3"):
        with pytest.raises(CfncError, match="--image-size"):
            parse_image_size(bad)


MODEL = {"backbone": "efficientnet-lite0", "image_size": 64, "feature_dim": 16}


@pytest.mark.parametrize("size", [64, [64, 160], [160, 64]])
def test_schema_takes_an_int_or_a_pair(size):
    validate({"format_version": 1, "files": {}, "model": dict(MODEL, image_size=size)}, "m")


@pytest.mark.parametrize("size", [[64], [64, 160, 8], [64, 161], [8, 64], "64", True])
def test_schema_refuses_other_sizes(size):
    with pytest.raises(BundleError, match="image_size"):
        validate({"format_version": 1, "files": {}, "model": dict(MODEL, image_size=size)}, "m")


def test_a_bundle_with_an_int_image_size_still_opens_as_a_square(tiny_bundle):
    from cfnc_edge.runtime.inspector import Inspector

    b = Bundle.open(tiny_bundle.path)
    assert b.model_config["image_size"] == 64  # the pre-(h, w) form: square data writes it too
    insp = Inspector(b, "torch")
    assert insp.image_size == (64, 64)
    r = insp([np.zeros((50, 120, 3), np.uint8)])[0]
    assert r.map.shape == (64, 64) and r.full_map().shape == (50, 120)

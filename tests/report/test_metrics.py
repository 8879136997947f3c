import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cfnc_edge.report.metrics import image_auroc, operating_point, pixel_auroc, pro_curve, pro_score


def test_image_auroc_hand_computed():
    # 2 positives, 3 negatives; pairs (pos > neg): 0.9 beats all 3, 0.4 beats 0.1 and 0.3 -> 5/6
    assert image_auroc([0.9, 0.4, 0.5, 0.1, 0.3], [1, 1, 0, 0, 0]) == pytest.approx(5 / 6)


def test_pixel_auroc_matches_sklearn_on_random_maps(rng):
    maps = rng.random((3, 8, 8))
    masks = rng.random((3, 8, 8)) > 0.8
    maps[masks] += 0.3
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))


def test_pro_hand_computed_case():
    """One image: a 2-pixel defect scored 0.9 and 0.5, six good pixels.

    Curve: (0, .5) at t=.9, (1/6, .5) at t=.8, (1/6, 1) at t=.5, then FPR grows.
    Area to FPR .3 = .5 * 1/6 + 1 * (.3 - 1/6) = 0.21667; normalised / .3 = 0.72222.
    """
    maps = np.array([[[0.9, 0.5, 0.8, 0.3], [0.2, 0.1, 0.05, 0.0]]])
    masks = np.zeros_like(maps, dtype=bool)
    masks[0, 0, :2] = True
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr[:4], [0, 0, 1 / 6, 1 / 6])
    np.testing.assert_allclose(pro[:4], [0, 0.5, 0.5, 1.0])
    assert pro_score(maps, masks) == pytest.approx((0.5 / 6 + (0.3 - 1 / 6)) / 0.3)


def test_pro_weights_every_region_equally_whatever_its_size():
    """A large region found and a small one missed score PRO 0.5, although 99%
    of defect pixels are found (pixel AUROC would call this nearly perfect)."""
    maps = np.zeros((1, 30, 30))
    masks = np.zeros_like(maps, dtype=bool)
    masks[0, :20, :20] = True  # 400 pixels, found
    masks[0, 25, 25] = True  # 1 pixel, missed
    maps[0, :20, :20] = 1.0
    fpr, pro = pro_curve(maps, masks)
    assert (fpr[1], pro[1]) == (0.0, pytest.approx(0.5))
    # then straight to (1, 1): PRO(0.3) = 0.65, area = (0.5 + 0.65) / 2 * 0.3, normalised 0.575
    assert pro_score(maps, masks) == pytest.approx(0.575)
    assert pixel_auroc(maps, masks) > 0.99


def test_pro_perfect_and_random_maps(rng):
    masks = np.zeros((4, 64, 64), bool)
    masks[0, 2:30, 3:40] = True
    masks[2, 40:60, 1:50] = True
    assert pro_score(masks.astype(float), masks) == pytest.approx(1.0)
    # random scores: PRO(fpr) ~ fpr, so the normalised area to 0.3 is ~0.15
    assert pro_score(rng.random(masks.shape), masks) == pytest.approx(0.15, abs=0.03)


def test_pro_needs_a_defect():
    with pytest.raises(ValueError):
        pro_score(np.ones((1, 4, 4)), np.zeros((1, 4, 4), bool))


def test_operating_point_and_oracle_hand_computed():
    # good 0.1 0.2 0.3 0.9, defective 0.25 0.5 0.8 0.95; at 0.85 one good (0.9) and one
    # defect (0.95) are above. With at most that one false alarm a threshold can flag
    # everything from 0.5 up: 0.9 among the good, 0.5 0.8 0.95 among the defects.
    scores = [0.1, 0.2, 0.3, 0.9, 0.25, 0.5, 0.8, 0.95]
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    op = operating_point(scores, labels, 0.85)
    assert op == {"threshold": 0.85, "good_images": 4, "defective_images": 4, "good_flagged": 0.25,
                  "defects_caught": 0.25, "oracle_caught": 0.75, "oracle_gap": 0.5, "oracle_good_flagged": 0.25, "oracle_threshold": 0.5}
    # the Inspector flags scores above the threshold: a score equal to it passes
    assert operating_point(scores, labels, 0.95)["defects_caught"] == 0.0
    # no false alarm allowed: the oracle flags 0.95 alone (the top good image, 0.9, must pass)
    at_zero = operating_point(scores, labels, 0.97)
    assert (at_zero["good_flagged"], at_zero["defects_caught"]) == (0.0, 0.0)
    assert (at_zero["oracle_caught"], at_zero["oracle_good_flagged"], at_zero["oracle_threshold"]) == (0.25, 0.0, 0.95)
    # among equal catch rates the oracle takes the fewest false alarms: at 0.05 everything
    # is flagged, and flagging from 0.25 up catches as many with two good images fewer (0.3 and 0.9 stay)
    everything = operating_point(scores, labels, 0.05)
    assert everything["oracle_caught"] == 1.0 and everything["oracle_good_flagged"] == 0.5
    assert everything["oracle_threshold"] == 0.25


def test_the_oracle_flags_nothing_when_the_top_score_is_a_good_image():
    op = operating_point([0.9, 0.1, 0.5], [0, 0, 1], 1.0)
    assert op["oracle_caught"] == 0.0 and op["oracle_threshold"] is None

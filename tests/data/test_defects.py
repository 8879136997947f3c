"""Synthetic defects: each mask covers exactly what changed, every defect is visible, placed on the part,
sized like real defects, and the same for a seed."""

import cv2
import numpy as np
import pytest

from cfnc_edge.data.defects import (
    AREA_RANGE, FAMILIES, MIN_CHANGE, add_defect, estimate_foreground, synthetic_defects,
)
from cfnc_edge.errors import DataError


def _texture(h, w, seed=0, grey=False):
    """A textured surface filling the frame: brushed stripes, grain and a colour cast."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    base = 110 + 20 * np.sin(xx * 0.7 + 0.1 * yy) + 12 * grain
    tint = np.ones(3) if grey else np.array([1.0, 0.9, 0.8])
    return np.clip(base[None] * tint[:, None, None], 0, 255).astype(np.uint8)


def _part(h, w, seed=0, grey=False):
    """A bright textured plate (rotated rectangle) on a dark noisy background -> (image, true foreground)."""
    rng = np.random.default_rng(seed)
    fg = np.zeros((h, w), np.uint8)
    box = cv2.boxPoints(((w / 2, h / 2), (0.6 * w, 0.45 * h), rng.uniform(-30, 30)))
    cv2.fillPoly(fg, [np.rint(box).astype(np.int32)], 1)
    bg = 50 + rng.normal(0, 2, (h, w))
    img = np.where(fg > 0, _texture(h, w, seed, grey).astype(float) + 50, bg[None])
    return np.clip(img, 0, 255).astype(np.uint8), fg > 0


CASES = {
    "texture 64": (_texture(64, 64), None),
    "part 96": _part(96, 96),
    "grey part 96": _part(96, 96, seed=1, grey=True),
    "long strip 48x120": (_texture(48, 120, seed=2), None),
    "tiny 32": _part(32, 32, seed=3),
}


def _changed(a, b):
    return (a != b).any(axis=0)


def _mean_change(out, img, mask):
    return np.abs(out.astype(float) - img)[:, mask].mean()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES)
def test_every_defect_is_masked_exactly_visible_and_on_the_part(family, case):
    img, fg = CASES[case]
    donor = np.roll(img, 7, axis=2)  # another "good image": the same surface shifted
    for seed in range(8):
        out, mask, name = add_defect(img, np.random.default_rng(seed), donor, family, fg)
        assert name == family
        assert out.shape == img.shape and out.dtype == np.uint8
        assert mask.shape == img.shape[1:] and mask.dtype == bool
        assert mask.any()
        assert not (_changed(out, img) & ~mask).any(), "a pixel outside the mask changed"
        assert _mean_change(out, img, mask) >= MIN_CHANGE
        if fg is not None:
            assert not (mask & ~fg).any(), "the defect left the part"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("level", [0, 128, 255])
def test_defects_are_visible_even_on_a_flat_saturated_surface(family, level):
    img = np.full((3, 40, 40), level, np.uint8)
    for seed in range(4):
        out, mask, _ = add_defect(img, np.random.default_rng(seed), family=family)
        assert mask.any() and not (_changed(out, img) & ~mask).any()
        assert _mean_change(out, img, mask) >= MIN_CHANGE


@pytest.mark.parametrize("family", FAMILIES)
def test_a_grey_image_stays_grey(family):
    img, fg = CASES["grey part 96"]
    for seed in range(4):
        out, _, _ = add_defect(img, np.random.default_rng(seed), np.roll(img, 5, axis=1), family, fg)
        assert (out[0] == out[1]).all() and (out[1] == out[2]).all()


def test_without_a_donor_or_foreground_cutpaste_uses_the_image_and_stays_on_the_estimated_part():
    img, _ = CASES["part 96"]
    est = estimate_foreground(img[None])[0]
    for seed in range(6):
        out, mask, _ = add_defect(img, np.random.default_rng(seed), family="cutpaste")
        assert mask.any() and not (mask & ~est).any()
        assert not (_changed(out, img) & ~mask).any()


def test_same_seed_same_defect_and_a_random_family_when_none_is_named():
    img, fg = CASES["part 96"]
    a = add_defect(img, np.random.default_rng(5), foreground=fg)
    b = add_defect(img, np.random.default_rng(5), foreground=fg)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all() and a[2] == b[2]
    names = {add_defect(img, np.random.default_rng(s), foreground=fg)[2] for s in range(40)}
    assert names == set(FAMILIES)


def test_foreground_finds_a_part_and_calls_a_texture_all_foreground():
    part, truth = _part(128, 160, seed=4)
    grey_part, grey_truth = _part(128, 160, seed=5, grey=True)
    est = estimate_foreground(np.stack([part, grey_part, _texture(128, 160)]))
    assert est.shape == (3, 128, 160) and est.dtype == bool
    for e, t in ((est[0], truth), (est[1], grey_truth)):
        assert (e & t).sum() / (e | t).sum() > 0.9
    assert est[2].all()


def test_the_set_cycles_every_family_with_donors_from_the_set():
    images = np.stack([_part(64, 80, seed=s)[0] for s in range(14)])
    out, masks, names = synthetic_defects(images, seed=3)
    assert out.shape == images.shape and out.dtype == np.uint8 and masks.shape == (14, 64, 80)
    assert sorted(names[:12]) == sorted(FAMILIES * 2)  # two full cycles
    assert set(names[12:]) <= set(FAMILIES)
    for o, i, m in zip(out, images, masks):
        assert m.any() and not (_changed(o, i) & ~m).any()
    again = synthetic_defects(images, seed=3)
    assert (again[0] == out).all() and (again[1] == masks).all() and again[2] == names
    assert (synthetic_defects(images, seed=4)[0] != out).any()
    only = synthetic_defects(images[:4], seed=0, families=("scratch", "stain"))[2]
    assert sorted(only) == ["scratch", "scratch", "stain", "stain"]


def test_sizes_span_small_and_large_defects_and_thin_ones_stay_thin():
    img = _texture(224, 224, seed=6)
    donor = np.roll(img, 31, axis=1)
    shares, radius = [], {"scratch": 0.0, "crack": 0.0}
    for seed in range(180):
        family = FAMILIES[seed % len(FAMILIES)]
        _, mask, _ = add_defect(img, np.random.default_rng(seed), donor, family)
        shares.append(mask.mean())
        if family in radius:  # the widest point of a stroke: its largest inscribed circle
            dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
            radius[family] = max(radius[family], float(dist.max()))
    shares = np.array(shares)
    assert (shares < 0.002).sum() >= 10 and (shares > 0.01).sum() >= 10
    assert shares.max() < 3 * AREA_RANGE[1]  # soft edges add a rim, never a multiple
    assert max(radius.values()) <= 4.0, radius


def test_bad_inputs_are_named():
    img, fg = CASES["part 96"]
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="channels first"):
        add_defect(img.transpose(1, 2, 0), rng)
    with pytest.raises(DataError, match="unknown defect family"):
        add_defect(img, rng, family="dent")
    with pytest.raises(DataError, match="donor"):
        add_defect(img, rng, donor=img[:, :10])
    with pytest.raises(DataError, match="foreground"):
        add_defect(img, rng, foreground=np.zeros_like(fg))
    with pytest.raises(DataError, match="unknown defect families"):
        synthetic_defects(img[None], families=("scratch", "dent"))


def test_defects_on_frames_of_different_sizes_mark_what_they_changed():
    from cfnc_edge.data.defects import defects_on_images

    rng = np.random.default_rng(5)
    images = [rng.integers(60, 200, (3, h, w), dtype=np.uint8) for h, w in ((40, 64), (96, 96), (50, 120))]
    out, masks, names = defects_on_images(images, seed=2)
    assert len(out) == len(masks) == len(names) == 3 and len(set(names)) == 3  # families cycled
    for img, bad, mask in zip(images, out, masks):
        assert bad.shape == img.shape and mask.shape == img.shape[1:] and mask.any()
        assert not ((bad != img).any(0) & ~mask).any()  # nothing changed outside the mask
    again, _, _ = defects_on_images(images, seed=2)
    assert all((a == b).all() for a, b in zip(out, again))

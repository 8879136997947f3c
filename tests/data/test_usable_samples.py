"""eval's up-front dataset check: every image and mask read before any work."""

import cv2
import numpy as np
import pytest

from cfnc_edge.data.mvtec import MVTecDataset, usable_samples
from cfnc_edge.errors import DataError


@pytest.fixture
def root(tmp_path):
    img = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    for d in ("good", "crack"):
        (tmp_path / "test" / d).mkdir(parents=True)
        for name in ("a", "b"):
            cv2.imwrite(str(tmp_path / "test" / d / f"{name}.png"), img)
    (tmp_path / "ground_truth" / "crack").mkdir(parents=True)
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "ground_truth" / "crack" / f"{name}_mask.png"), np.zeros((20, 30), np.uint8))
    return tmp_path


def damage(root):
    (root / "test" / "good" / "b.png").write_bytes(b"not an image")
    cv2.imwrite(str(root / "ground_truth" / "crack" / "b_mask.png"), np.zeros((10, 10), np.uint8))


def test_unreadable_images_and_wrong_masks_are_skipped_and_named(root):
    damage(root)
    good, skipped = usable_samples(MVTecDataset(root).test_samples())
    assert [s.path.name for s in good] == ["a.png", "a.png"]
    assert sorted(s["path"].split("test/")[-1] for s in skipped) == ["crack/b.png", "good/b.png"]
    assert any("b_mask.png is 10x10" in s["error"] for s in skipped)


def test_fail_mode_refuses_the_dataset_up_front(root):
    damage(root)
    with pytest.raises(DataError, match="2 of 4 test images cannot be used"):
        usable_samples(MVTecDataset(root).test_samples(), on_error="fail")


def test_nothing_left_of_one_class_is_an_error(root):
    for name in ("a", "b"):
        (root / "test" / "good" / f"{name}.png").write_bytes(b"")
    with pytest.raises(DataError, match="lacks good or defective images"):
        usable_samples(MVTecDataset(root).test_samples())

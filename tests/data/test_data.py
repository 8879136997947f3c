import cv2
import numpy as np
import pytest

from cfnc_edge.data import MVTecDataset, generate_dataset
from cfnc_edge.data.synthetic import DEFECTS, render_defective, render_good
from cfnc_edge.errors import DataError
from cfnc_edge.images import preprocess, read_image


def make_layout(root, n_train=2):
    img = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    (root / "train" / "good").mkdir(parents=True)
    for i in range(n_train):
        cv2.imwrite(str(root / "train" / "good" / f"{i}.png"), img)
    for d in ("good", "crack"):
        (root / "test" / d).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "test" / d / "a.png"), img)
    (root / "ground_truth" / "crack").mkdir(parents=True)
    cv2.imwrite(str(root / "ground_truth" / "crack" / "a_mask.png"), np.zeros((20, 30), np.uint8))
    return root


def test_reader_finds_the_mvtec_layout(tmp_path):
    ds = MVTecDataset(make_layout(tmp_path))
    assert len(ds.train_images()) == 2
    samples = ds.test_samples()
    assert [s.defect for s in samples] == ["crack", "good"]
    img, mask = samples[0].load()
    assert img.shape == (20, 30, 3) and mask.shape == (20, 30) and mask.dtype == bool


def test_empty_train_folder_is_named(tmp_path):
    root = make_layout(tmp_path, n_train=0)
    with pytest.raises(DataError, match="train/good holds no images"):
        MVTecDataset(root).train_images()


def test_missing_folders_are_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        MVTecDataset(tmp_path / "nope")
    with pytest.raises(DataError, match="no train/good"):
        MVTecDataset(tmp_path).train_images()


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)


def test_mask_of_the_wrong_size_names_the_file(tmp_path):
    root = make_layout(tmp_path)
    cv2.imwrite(str(root / "ground_truth" / "crack" / "a_mask.png"), np.zeros((10, 10), np.uint8))
    sample = [s for s in MVTecDataset(root).test_samples() if s.defect == "crack"][0]
    with pytest.raises(DataError, match="a_mask.png is 10x10 but its image is 30x20"):
        sample.load()


def test_missing_mask_is_reported_before_any_work(tmp_path):
    root = make_layout(tmp_path)
    (root / "ground_truth" / "crack" / "a_mask.png").unlink()
    with pytest.raises(DataError, match="no ground-truth mask"):
        MVTecDataset(root).test_samples()


def test_grayscale_16bit_and_alpha_images_become_bgr(tmp_path):
    rng = np.random.default_rng(0)
    for name, img in [("g.png", (rng.random((9, 7)) * 255).astype(np.uint8)),
                      ("g16.png", (rng.random((9, 7)) * 65535).astype(np.uint16)),
                      ("a.png", (rng.random((9, 7, 4)) * 255).astype(np.uint8))]:
        cv2.imwrite(str(tmp_path / name), img)
        out = read_image(tmp_path / name)
        assert out.shape == (9, 7, 3) and out.dtype == np.uint8


def test_preprocess_gives_rgb_chw_at_model_size():
    frame = np.zeros((30, 50, 3), np.uint8)
    frame[..., 0] = 200  # blue in BGR
    batch = preprocess([frame, frame[:10]], 16)
    assert batch.shape == (2, 3, 16, 16) and batch.dtype == np.uint8
    assert batch[0, 2].min() == 200 and batch[0, 0].max() == 0  # channel 2 of RGB is blue


@pytest.mark.parametrize("kind", DEFECTS)
def test_defect_masks_are_exactly_the_changed_pixels(kind):
    """Render the same good image twice from the same seed, once with a defect:
    the mask must be non-empty and cover every pixel that differs."""
    good, part = render_good(np.random.default_rng(5), 128)
    bad, mask = render_defective(np.random.default_rng(5), kind, 128)
    changed = np.abs(bad - good).max(axis=2) > 1e-3
    assert mask.any() and mask.sum() < 0.05 * mask.size  # small, as on a real line
    assert not (changed & ~mask).any()
    assert changed[mask].mean() > 0.8
    assert not (mask & ~part).any()


def test_generated_dataset_is_a_valid_mvtec_layout(tmp_path):
    root = generate_dataset(tmp_path, n_train=3, n_test_good=2, n_per_defect=1, size=64, progress=False)
    ds = MVTecDataset(root)
    assert len(ds.train_images()) == 3
    samples = ds.test_samples()
    assert sorted({s.defect for s in samples}) == sorted(DEFECTS + ("good",))
    for s in samples:
        img, mask = s.load()
        assert mask.any() == s.is_anomalous


@pytest.mark.parametrize("kwargs,message", [({"size": 0}, "--size must be from 16 to 4096"),
                                            ({"size": 100000}, "--size must be from 16 to 4096"),
                                            ({"n_train": -1}, "must be at least 0")])
def test_generate_refuses_absurd_sizes_in_one_line(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        generate_dataset(tmp_path / "g", **{"n_train": 1, "n_test_good": 1, "n_per_defect": 1, **kwargs})


def test_generate_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "g").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file"):
        generate_dataset(tmp_path / "g", 1, 1, 1, 32, progress=False)


def test_too_few_good_images_names_the_folders_as_paths(tmp_path):
    # it printed the Python list: "[PosixPath('...')]: need at least 2 ..."
    from cfnc_edge.data.training_set import good_paths
    from cfnc_edge.errors import CfncError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(CfncError) as err:
        good_paths([tmp_path / "a", tmp_path / "b"])
    assert str(err.value) == f"{tmp_path / 'a'}, {tmp_path / 'b'}: need at least 2 good training images, found 0"

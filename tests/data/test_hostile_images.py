"""Damaged and odd image files, as a user's folder may hold them."""

import cv2
import numpy as np
import pytest

from cfnc_edge.errors import DataError
from cfnc_edge.images import read_image
from cfnc_edge.stream.sources import CorruptFrame, FolderSource


def _jpeg(path, rng, gray=False):
    img = rng.integers(0, 256, (48, 64) if gray else (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.GaussianBlur(img, (5, 5), 0))
    return path


def test_a_truncated_jpeg_is_refused_not_scored_as_gray_rows(tmp_path, rng):
    # OpenCV alone decodes this file "successfully" (a warning on stderr, the
    # missing rows gray): it was scored and trained on as if it were the part
    whole = _jpeg(tmp_path / "whole.jpg", rng).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut.jpg.*damaged JPEG"):
        read_image(cut)


@pytest.mark.parametrize("gray", [False, True])
def test_a_whole_jpeg_decodes_to_the_pixels_opencv_gives(tmp_path, rng, gray):
    path = _jpeg(tmp_path / "a.jpg", rng, gray)
    expected = cv2.imread(str(path), cv2.IMREAD_COLOR)
    # two decoders (Pillow's and OpenCV's bundled libjpeg-turbo): equal here, but wheels of other
    # versions may round the IDCT or chroma upsampling differently, so within one grey level
    diff = np.abs(read_image(path).astype(np.int16) - expected.astype(np.int16))
    assert read_image(path).shape == expected.shape and diff.max() <= 1


def test_a_jpeg_named_png_is_still_checked(tmp_path, rng):
    whole = _jpeg(tmp_path / "a.jpg", rng).read_bytes()
    (tmp_path / "b.png").write_bytes(whole[:-200])
    with pytest.raises(DataError, match="damaged JPEG"):
        read_image(tmp_path / "b.png")


def test_an_empty_file_is_a_data_error(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match="zero.png: the file is empty"):
        read_image(tmp_path / "zero.png")


def test_a_folder_named_like_an_image_is_a_data_error(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(DataError, match="x.png"):
        read_image(tmp_path / "x.png")


def test_a_folder_source_skips_a_truncated_jpeg_as_a_corrupt_frame(tmp_path, rng):
    _jpeg(tmp_path / "0.jpg", rng)
    whole = _jpeg(tmp_path / "1.jpg", rng).read_bytes()
    (tmp_path / "1.jpg").write_bytes(whole[: len(whole) // 2])
    src = FolderSource(tmp_path)
    src.open()
    assert src.read()[1].shape == (48, 64, 3)
    with pytest.raises(CorruptFrame, match="1.jpg"):
        src.read()


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """Two valid all-black PNGs, small on disk: 10001x10000 (just over the cap) and
    13500x13500 (over Pillow's own decompression-bomb limit too)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("huge")
    for w, h in ((10001, 10000), (13500, 13500)):
        Image.new("L", (w, h)).save(folder / f"{w}x{h}.png", compress_level=1)
    return folder


@pytest.mark.parametrize("name, says", [
    ("10001x10000.png", r"10001x10000 is 100.01 megapixels; cfnc-edge reads at most 100 megapixels: downscale"),
    ("13500x13500.png", r"more than 178 megapixels \(Image size \(182250000 pixels\).*reads at most 100 megapixels"),
])
def test_an_image_over_the_pixel_cap_is_refused_before_it_is_decoded(huge, name, says):
    import tracemalloc

    # a batch of 20000x20000 frames would have held ~10 GB: refuse from the header
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{name}: {says}"):
            read_image(huge / name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # the decoded pixels (100 MB and more) were never allocated

"""Tiling: a tiled frame's map is its tiles' maps put side by side (averaged
where tiles overlap), frames that are not a whole number of tiles are covered
by shifting the last tile back to the border, and training on tiles."""

import numpy as np
import pytest

from cfnc_edge.data.tiling import Layout, Tiling, cut, starts, stitch
from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.scoring.fitted import frame_max

S = 64  # the tiny bundle's model input


@pytest.fixture(scope="module")
def parts(tiny_data):
    """Three 64x64 test images: the tiles a long frame is built from."""
    import cv2

    paths = sorted((tiny_data / "test").glob("*/*.png"))[:3]
    return [cv2.resize(read_image(p), (S, S), interpolation=cv2.INTER_AREA) for p in paths]


@pytest.fixture(scope="module")
def plain(tiny_bundle):
    return Inspector(tiny_bundle, "torch")


def test_tiled_frame_map_is_its_tiles_maps_side_by_side(tiny_bundle, plain, parts):
    frame = np.concatenate(parts, axis=1)  # 64 x 192: three whole tiles, no overlap
    got = Inspector(tiny_bundle, "torch", tile="auto")([frame])[0]
    alone = [plain([p])[0] for p in parts]  # each tile run on its own
    assert got.map.shape == (S, 3 * S) and got.full_map().shape == frame.shape[:2]
    # batch 3 against batch 1: PyTorch's CPU convolutions sum in another order per batch size, so
    # fp32 maps differ by rounding; a fresh-clone CI (shuffled, seed 9992) measured 1.13e-5 relative
    np.testing.assert_allclose(got.map, np.concatenate([a.map for a in alone], axis=1), rtol=1e-4, atol=1e-6)
    assert got.score == pytest.approx(max(a.score for a in alone), rel=1e-4)
    assert got.anomalous == (got.score > got.threshold)


def test_frame_not_a_whole_number_of_tiles_shifts_the_last_tile(tiny_bundle, plain, parts):
    frame = np.concatenate(parts, axis=1)[:, :160]  # 160 = 64 + 64 + 32: the third tile starts at 96
    got = Inspector(tiny_bundle, "torch", tile=S)([frame])[0].map
    a, b, c = (r.map for r in plain([frame[:, x:x + S] for x in (0, 64, 96)]))
    assert got.shape == (S, 160)
    np.testing.assert_allclose(got[:, :64], a, rtol=1e-5, atol=1e-6)  # one tile only: unchanged
    np.testing.assert_allclose(got[:, 64:96], b[:, :32], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, 96:128], (b[:, 32:] + c[:, :32]) / 2, rtol=1e-5, atol=1e-6)  # averaged
    np.testing.assert_allclose(got[:, 128:], c[:, 32:], rtol=1e-5, atol=1e-6)


def test_tiles_larger_than_the_model_input_are_scaled_to_it(tiny_bundle, plain, parts):
    import cv2

    frame = cv2.resize(np.concatenate(parts[:2], axis=1), (4 * S, 2 * S), interpolation=cv2.INTER_LINEAR)
    got = Inspector(tiny_bundle, "torch", tile=(2 * S, 2 * S))([frame])[0]
    half = cv2.resize(frame, (2 * S, S), interpolation=cv2.INTER_AREA)
    ref = np.concatenate([r.map for r in plain([half[:, :S], half[:, S:]])], axis=1)
    assert got.map.shape == (S, 2 * S) and got.full_map().shape == (2 * S, 4 * S)
    np.testing.assert_allclose(got.map, ref, rtol=1e-5, atol=1e-6)


def test_frame_smaller_than_a_tile_is_padded_and_cropped_back(tiny_bundle):
    frame = np.full((40, 100, 3), 120, np.uint8)
    r = Inspector(tiny_bundle, "torch", tile="auto")([frame])[0]
    assert r.map.shape == (40, 100) and r.score == pytest.approx(float(r.map.max()))


def test_tile_origins_cover_every_pixel():
    assert starts(192, 64, 0.0) == [0, 64, 128]
    assert starts(160, 64, 0.0) == [0, 64, 96]
    assert starts(160, 64, 0.5) == [0, 32, 64, 96]
    assert starts(40, 64, 0.0) == [0]
    for length in range(64, 300, 7):
        for ov in (0.0, 0.25, 0.5):
            s = starts(length, 64, ov)
            covered = np.zeros(length, bool)
            for x in s:
                covered[x:x + 64] = True
            assert covered.all() and s[-1] + 64 == length


def test_stitch_averages_overlaps_and_cut_places_tiles():
    frame = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    tiles, lay = cut(frame, (5, 4), Tiling())
    assert lay == Layout((5, 7), [(0, 0), (0, 3)])
    np.testing.assert_array_equal(tiles[1], frame[:, 3:7])
    m = stitch(np.stack([np.full((5, 4), 1.0), np.full((5, 4), 3.0)]), lay)
    assert m.shape == (5, 7) and m[0, 3] == 2.0 and m[0, 0] == 1.0 and m[0, 6] == 3.0
    np.testing.assert_array_equal(frame_max(np.array([1.0, 5.0, 2.0]), np.array([0, 0, 1])), [5.0, 2.0])


@pytest.mark.parametrize("tile, overlap", [("0x64", 0.0), ("big", 0.0), ("auto", 0.95), ("1x2x3", 0.0)])
def test_bad_tiling_options_are_refused(tile, overlap):
    with pytest.raises(CfncError, match="--tile"):
        Tiling.parse(tile, overlap)


def test_training_on_tiles_fits_tile_positions_and_tiles_inspection(tiny_data, tmp_path):
    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    b = train(tiny_data, tmp_path / "b", ModelConfig(image_size=S, feature_dim=8), TrainConfig(steps=1, batch_size=4),
              progress=False, tile="auto")
    # 96x96 images, 64x64 tiles: origins 0 and 32 on each axis, 4 tiles per image
    assert b.manifest["tiling"] == {"size": None, "overlap": 0.0}
    assert b.manifest["data"]["fit_tiles"] == 4 * b.manifest["data"]["fit_images"]
    assert b.manifest["gaussian"]["positions"] == (S // 4) ** 2
    insp = Inspector(b, "torch")
    assert insp.tiling == Tiling()
    frame = read_image(sorted((tiny_data / "test").glob("*/*.png"))[0])
    r = insp([frame])[0]
    assert r.map.shape == frame.shape[:2]
    assert Inspector(b, "torch", tile=Tiling(overlap=0.5)).tiling.overlap == 0.5  # the caller's choice wins
    # a resumed run keeps the tiling it was started with (the checkpoint's configs do not hold it)
    resumed = train(tiny_data, tmp_path / "b", resume=True, progress=False)
    assert resumed.manifest["tiling"] == b.manifest["tiling"]
    assert resumed.manifest["data"]["fit_tiles"] == b.manifest["data"]["fit_tiles"]


def test_a_tile_so_small_it_makes_thousands_of_tiles_is_refused_at_once():
    # --tile 1 on a 96 px frame ran for minutes: 9216 tiles, each scaled up to a model input
    with pytest.raises(CfncError, match="makes 9216 tiles, more than 4096: use a larger --tile"):
        cut(np.zeros((96, 96, 3), np.uint8), (64, 64), Tiling((1, 1)))


def test_a_tile_larger_than_the_frame_on_both_sides_is_refused():
    # --tile 100000 shrank a 96 px frame to 1 px, padded it and scored the smear
    refused = "a 96x96 frame is smaller than one tile of 100000x100000 pixels: use a smaller --tile or none"
    with pytest.raises(CfncError, match=refused):
        cut(np.zeros((96, 96, 3), np.uint8), (64, 64), Tiling((100000, 100000)))
    tiles, lay = cut(np.zeros((96, 96, 3), np.uint8), (64, 64), Tiling((100000, 96)))  # one side: a strip, fine
    assert lay.shape == (1, 64) and len(tiles) == 1

"""Bundles edited, re-hashed or mixed by hand: one BundleError line, never a traceback."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from cfnc_edge.bundle import GAUSSIAN, Bundle
from cfnc_edge.errors import BundleError
from cfnc_edge.runtime.inspector import Inspector

FRAME = np.full((96, 96, 3), 128, np.uint8)


def _copy(tiny_bundle, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, dest, symlinks=True)
    return dest, Bundle.open(dest)


def _save(b):
    (b.dir / "manifest.json").write_text(json.dumps(b.manifest))


def test_a_garbage_file_listed_with_its_own_checksum_is_a_bundle_error(tiny_bundle, tmp_path):
    dest, b = _copy(tiny_bundle, tmp_path)
    data = b"garbage" * 10
    (b.dir / GAUSSIAN).write_bytes(data)
    b.manifest["files"][GAUSSIAN] = hashlib.sha256(data).hexdigest()
    _save(b)
    with pytest.raises(BundleError, match="gaussian.safetensors is not a safetensors file"):
        Inspector(dest, backend="torch")


def test_a_manifest_edited_to_another_feature_dim_is_a_bundle_error(tiny_bundle, tmp_path):
    dest, b = _copy(tiny_bundle, tmp_path)
    b.manifest["model"]["feature_dim"] += 1
    _save(b)
    with pytest.raises(BundleError, match="does not fit the model its manifest describes"):
        Inspector(dest, backend="torch")


def test_a_manifest_edited_to_another_input_size_is_a_bundle_error(tiny_bundle, tmp_path):
    # the weights still load (the input size has no parameters): the Gaussian's positions disagree
    dest, b = _copy(tiny_bundle, tmp_path)
    b.manifest["model"]["image_size"] = 128
    _save(b)
    with pytest.raises(BundleError, match="manifest and files disagree"):
        Inspector(dest, backend="torch")([FRAME])


# ---- links and paths that lead a bundle elsewhere (small fake bundles: no model) ----
MODEL = {"backbone": "efficientnet-lite0", "image_size": 64, "feature_dim": 16}


def _commit(root, value):
    b = Bundle.open(root) if (root / "current").exists() else Bundle(root)
    b.write({"weights.safetensors": b"w%g" % value}, model=MODEL, threshold={"value": value})


def test_a_current_link_to_another_bundles_version_is_refused(tmp_path):
    # it was read silently: another model under this bundle's name
    _commit(tmp_path / "a", 1.0)
    _commit(tmp_path / "other", 2.0)
    (tmp_path / "a" / "current").unlink()
    (tmp_path / "a" / "current").symlink_to(tmp_path / "other" / "versions" / "000001")
    with pytest.raises(BundleError, match="not to a version of this bundle"):
        Bundle.open(tmp_path / "a")


def test_a_bundle_reached_through_a_link_still_opens(tmp_path):
    _commit(tmp_path / "a", 1.0)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert Bundle.open(tmp_path / "link").threshold == 1.0


@pytest.mark.parametrize("inside", ["versions/000001", "current"])
def test_writing_a_bundle_into_a_version_of_another_is_refused(tmp_path, inside):
    # `train -o bundle/versions/000001` made the version a bundle of its own and
    # replaced its files by links: the old bundle no longer opened
    _commit(tmp_path / "a", 1.0)
    with pytest.raises(BundleError, match="is a version inside the bundle"):
        _commit(tmp_path / "a" / inside, 2.0)
    assert Bundle.open(tmp_path / "a").threshold == 1.0


def test_a_bundle_folder_that_is_a_file_is_a_bundle_error(tmp_path):
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(BundleError, match="cannot make the bundle folder"):
        _commit(tmp_path / "f.png", 1.0)

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

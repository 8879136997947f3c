import json
import shutil

import numpy as np
import pytest

from cfnc_edge.bundle import GAUSSIAN, MANIFEST, WEIGHTS, Bundle
from cfnc_edge.errors import BundleError
from cfnc_edge.images import read_image
from cfnc_edge.runtime.inspector import Inspector


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, dest, symlinks=True)
    return dest


def test_bundle_holds_no_pickle_and_lists_every_file(tiny_bundle):
    files = tiny_bundle.manifest["files"]
    assert set(files) == {WEIGHTS, GAUSSIAN}
    for name in files:
        head = (tiny_bundle.path / name).read_bytes()[:2]
        assert head != b"\x80\x04" and head != b"PK"  # neither a pickle nor a torch zip
    m = tiny_bundle.manifest
    assert m["model"]["feature_dim"] == 16 and m["threshold"]["value"] > 0
    assert "torch" in m["versions"]


def test_round_trip_gives_identical_scores(tiny_bundle, tiny_data):
    frames = [read_image(p) for p in sorted((tiny_data / "test" / "scratch").glob("*.png"))]
    a = Inspector(tiny_bundle.path)(frames)
    b = Inspector(Bundle.open(tiny_bundle.path))(frames)
    assert [r.score for r in a] == [r.score for r in b]
    assert a[0].map.shape == (64, 64) and a[0].full_map().shape == frames[0].shape[:2]


def test_tampered_file_is_refused(bundle_copy):
    p = bundle_copy / GAUSSIAN
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="gaussian.safetensors does not match its checksum"):
        Bundle.open(bundle_copy)


def test_missing_file_and_missing_manifest_are_refused(bundle_copy, tmp_path):
    (Bundle.open(bundle_copy).dir / WEIGHTS).unlink()
    with pytest.raises(BundleError, match="listed in the manifest but missing"):
        Bundle.open(bundle_copy)
    with pytest.raises(BundleError, match="not a model bundle"):
        Bundle.open(tmp_path / "empty")


def test_unknown_format_version_is_refused(bundle_copy):
    m = json.loads((bundle_copy / MANIFEST).read_text())
    m["format_version"] = 999
    (bundle_copy / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format 999 is not supported"):
        Bundle.open(bundle_copy)


def test_rewrite_leaves_no_temporary_files(bundle_copy):
    b = Bundle.open(bundle_copy)
    b.write({"extra.bin": b"abc"}, note="x")
    again = Bundle.open(bundle_copy)
    assert again.manifest["note"] == "x" and again.has("extra.bin")
    assert not [p for p in bundle_copy.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".staging")]


def test_threshold_override_changes_verdicts_not_scores(tiny_bundle, tiny_data):
    frames = [read_image(p) for p in sorted((tiny_data / "test" / "good").glob("*.png"))]
    low = Inspector(tiny_bundle.path, threshold=1e-9)(frames)
    high = Inspector(tiny_bundle.path, threshold=1e9)(frames)
    assert all(r.anomalous for r in low) and not any(r.anomalous for r in high)
    assert [r.score for r in low] == [r.score for r in high]


def test_inspector_records_the_stage_split(tiny_bundle, tiny_data):
    insp = Inspector(tiny_bundle.path)
    insp([read_image(next((tiny_data / "test" / "good").glob("*.png")))])
    assert set(insp.timings) == {"preprocess", "features", "distance", "postprocess"}
    assert all(v[0] > 0 for v in insp.timings.values())
    assert np.isfinite(insp.threshold)

"""Every bad manifest field: one BundleError naming the field, never a traceback."""

import json

import pytest

from cfnc_edge.bundle import GAUSSIAN, MANIFEST, WEIGHTS, Bundle
from cfnc_edge.bundle.schema import dumps
from cfnc_edge.errors import BundleError

MODEL = {"backbone": "efficientnet-lite0", "image_size": 64, "feature_dim": 16}


@pytest.fixture
def root(tmp_path):
    b = Bundle(tmp_path / "b")
    b.write({WEIGHTS: b"w", GAUSSIAN: b"g"}, model=MODEL, threshold={"value": 2.0}, gaussian={"eps": 0.01})
    return b.path


def edit(root, change):
    path = Bundle.open(root).dir / MANIFEST
    m = json.loads(path.read_text())
    text = change(m)
    path.write_text(text if isinstance(text, str) else json.dumps(m))


BAD = {
    "threshold NaN": (lambda m: json.dumps(m).replace('"value": 2.0', '"value": NaN'), "NaN is not a JSON number"),
    "threshold Infinity": (lambda m: json.dumps(m).replace('"value": 2.0', '"value": Infinity'), "Infinity"),
    "threshold negative": (lambda m: m["threshold"].update(value=-5), "field threshold.value"),
    "threshold zero": (lambda m: m["threshold"].update(value=0), "field threshold.value"),
    "threshold a string": (lambda m: m["threshold"].update(value="abc"), "field threshold.value: 'abc'"),
    "threshold missing value": (lambda m: m["threshold"].pop("value"), "field threshold: 'value' is a required"),
    "model missing": (lambda m: m.pop("model"), "'model' is a required property"),
    "extra model key": (lambda m: m["model"].update(wings=2), "field model: unknown key"),
    "image size 0": (lambda m: m["model"].update(image_size=0), "field model.image_size"),
    # an edited manifest asked for a 120 GB input buffer (hostile probe, issue 22)
    "image size 100000": (lambda m: m["model"].update(image_size=100000), "field model.image_size"),
    "feature dim a float": (lambda m: m["model"].update(feature_dim=1.5), "field model.feature_dim"),
    "eps negative": (lambda m: m["gaussian"].update(eps=-1), "field gaussian.eps"),
    "manifest a list": (lambda m: "[1, 2]", "field (top level)"),
    "not JSON": (lambda m: "{", "is not valid JSON"),
    "path traversal": (lambda m: m["files"].update({"../../../../etc/passwd": "0" * 64}),
                       "'../../../../etc/passwd' is not a plain file name"),
    "absolute path": (lambda m: m["files"].update({"/etc/passwd": "0" * 64}), "not a plain file name"),
    "hidden name": (lambda m: m["files"].update({".lock": "0" * 64}), "not a plain file name"),
    "checksum not hex": (lambda m: m["files"].update({WEIGHTS: "xyz"}), "field files.weights.safetensors"),
    "format version a string": (lambda m: m.update(format_version="1"), "field format_version"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_manifest_field_is_refused_naming_it(root, case):
    change, message = BAD[case]
    edit(root, change)
    with pytest.raises(BundleError) as info:
        Bundle.open(root)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_valid_manifest_passes_and_etc_passwd_is_never_read(root):
    assert Bundle.open(root).threshold == 2.0


def test_strict_json_turns_nan_into_null():
    assert json.loads(dumps({"pro": float("nan"), "x": [float("inf"), 1.0]})) == {"pro": None, "x": [None, 1.0]}


def test_a_writer_cannot_commit_an_invalid_manifest(root):
    b = Bundle.open(root)
    with pytest.raises(BundleError, match="field threshold.value"):
        b.write({}, threshold={"value": float("nan")})
    assert Bundle.open(root).threshold == 2.0

"""Signed bundles: every file covered; tampered, added, removed and forged all refused."""

import json
import shutil

import pytest

from cfnc_edge.api.bundles import make_keys, sign_bundle, verify_bundle
from cfnc_edge.bundle import GAUSSIAN, MANIFEST, PUBLIC_KEY_ENV, WEIGHTS, Bundle
from cfnc_edge.bundle.signature import SIGNATURE
from cfnc_edge.errors import BundleError, CfncError

MODEL = {"backbone": "efficientnet-lite0", "image_size": 64, "feature_dim": 16}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    make_keys(d / "owner.pem", d / "owner.pub")
    make_keys(d / "other.pem", d / "other.pub")
    return d


@pytest.fixture
def signed(tmp_path, keys):
    b = Bundle(tmp_path / "b")
    b.write({WEIGHTS: b"w", GAUSSIAN: b"g", "engines/x.plan": b"plan"}, model=MODEL, threshold={"value": 2.0})
    sign_bundle(b.path, keys / "owner.pem")
    return b.path


def test_a_signed_bundle_verifies_with_its_key(signed, keys):
    b = Bundle.open(signed, public_key=keys / "owner.pub")
    assert b.signed and b.manifest["revision"]["number"] == 2
    rows = dict(verify_bundle(signed, keys / "owner.pub"))
    assert rows["signature"].startswith("valid") and rows["rollback"] == "revision 1 kept"


def test_a_configured_public_key_makes_the_signature_mandatory(signed, keys, tmp_path, monkeypatch):
    monkeypatch.setenv(PUBLIC_KEY_ENV, str(keys / "owner.pub"))
    Bundle.open(signed)
    unsigned = Bundle(tmp_path / "u")
    unsigned.write({WEIGHTS: b"w"}, model=MODEL)
    with pytest.raises(BundleError, match="is not signed, but a signature is required"):
        Bundle.open(unsigned.path)


def tamper(folder, how):
    if how == "changed weights":
        (folder / WEIGHTS).write_bytes(b"forged")
        return "weights.safetensors changed"
    if how == "changed weights, checksum recomputed":
        import hashlib

        (folder / WEIGHTS).write_bytes(b"forged")
        m = json.loads((folder / MANIFEST).read_text())
        m["files"][WEIGHTS] = hashlib.sha256(b"forged").hexdigest()
        (folder / MANIFEST).write_text(json.dumps(m))
        return "changed"
    if how == "threshold edited":
        m = json.loads((folder / MANIFEST).read_text())
        m["threshold"]["value"] = 1e9
        (folder / MANIFEST).write_text(json.dumps(m))
        return "manifest.json changed"
    if how == "engine removed and unlisted":
        (folder / "engines" / "x.plan").unlink()
        m = json.loads((folder / MANIFEST).read_text())
        del m["files"]["engines/x.plan"]
        (folder / MANIFEST).write_text(json.dumps(m))
        return "engines/x.plan removed"
    if how == "signature forged":
        sig = json.loads((folder / SIGNATURE).read_text())
        sig["dsseEnvelope"]["signatures"][0]["sig"] = "MEUCIQ" + "A" * 90
        (folder / SIGNATURE).write_text(json.dumps(sig))
        return "invalid signature"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["changed weights", "changed weights, checksum recomputed", "threshold edited",
                                 "engine removed and unlisted", "signature forged"])
def test_tampered_bundle_fails_verification(signed, keys, how):
    folder = Bundle.open(signed).dir
    expected = tamper(folder, how)
    with pytest.raises(BundleError) as info:
        Bundle.open(signed, verify=False, public_key=keys / "owner.pub")
    assert "signature check failed" in str(info.value) and expected in str(info.value)


def test_added_file_fails_verification_even_if_listed(signed, keys):
    folder = Bundle.open(signed).dir
    (folder / "extra.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.onnx added"):
        Bundle.open(signed, verify=False, public_key=keys / "owner.pub")


def test_another_signers_bundle_is_refused(signed, keys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(signed, other, symlinks=True)
    sign_bundle(other, keys / "other.pem")
    with pytest.raises(BundleError, match="signed with another key"):
        Bundle.open(other, public_key=keys / "owner.pub")


def test_a_later_write_drops_the_signature(signed, keys):
    Bundle.open(signed).write({"model.onnx": b"x"})
    assert not Bundle.open(signed).signed
    with pytest.raises(BundleError, match="is not signed"):
        Bundle.open(signed, public_key=keys / "owner.pub")


def test_keys_are_never_overwritten_and_a_bad_key_is_one_error(keys, signed):
    with pytest.raises(CfncError, match="exists"):
        make_keys(keys / "owner.pem", keys / "new.pub")
    with pytest.raises(BundleError, match="cannot sign with"):
        sign_bundle(signed, keys / "owner.pub")  # a public key is no signing key

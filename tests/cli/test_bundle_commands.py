"""bundle verify / rollback / keygen, sign, --public-key, and the lock across processes."""

import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cfnc_edge.bundle import Bundle
from cfnc_edge.bundle.store import writer_lock
from cfnc_edge.cli import app


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "cfnc_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.fixture
def bundle_copy(exported, tmp_path):
    dest = tmp_path / "b"
    shutil.copytree(exported[0].path, dest, symlinks=True)
    return dest


def test_keygen_sign_verify_and_rollback(bundle_copy, tmp_path):
    run = CliRunner().invoke
    keys = tmp_path / "keys"
    assert run(app, ["bundle", "keygen", "--private-key", str(keys / "k.pem"),
                     "--public-key", str(keys / "k.pub")]).exit_code == 0
    assert (keys / "k.pem").stat().st_mode & 0o777 == 0o600
    before = Bundle.open(bundle_copy).manifest["revision"]["number"]
    assert run(app, ["sign", "--bundle", str(bundle_copy), "--key", str(keys / "k.pem")]).exit_code == 0
    r = run(app, ["bundle", "verify", "--bundle", str(bundle_copy), "--public-key", str(keys / "k.pub")])
    assert r.exit_code == 0, r.output
    rows = dict(line.split(None, 1) for line in r.stdout.splitlines())
    assert rows["signature"].startswith("valid") and rows["rollback"] == f"revision {before} kept"
    assert rows["model.onnx"] == rows["model-int8.onnx"] == "exported from this bundle's weights"
    assert run(app, ["bundle", "rollback", "--bundle", str(bundle_copy)]).exit_code == 0
    b = Bundle.open(bundle_copy)
    assert b.manifest["revision"]["number"] == before and not b.signed


def test_public_key_makes_infer_refuse_an_unsigned_or_changed_bundle(bundle_copy, tiny_data, tmp_path):
    from cfnc_edge.api import make_keys, sign_bundle

    make_keys(tmp_path / "k.pem", tmp_path / "k.pub")
    image = next((tiny_data / "test" / "good").glob("*.png"))
    r = cli("--public-key", tmp_path / "k.pub", "infer", image, "--bundle", bundle_copy)
    assert r.returncode == 2 and "is not signed, but a signature is required" in r.stderr
    sign_bundle(bundle_copy, tmp_path / "k.pem")
    r = cli("infer", image, "--bundle", bundle_copy, env={"CFNC_EDGE_PUBLIC_KEY": str(tmp_path / "k.pub"),
                                                          "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    (Bundle.open(bundle_copy).dir / "extra.bin").write_bytes(b"x")
    r = cli("--public-key", tmp_path / "k.pub", "bundle", "verify", "--bundle", bundle_copy)
    assert r.returncode == 2 and "extra.bin" in r.stderr and "Traceback" not in r.stderr


def test_a_second_train_into_the_same_folder_is_refused_at_its_start(tiny_data, tmp_path):
    """Before: two `train` runs into one --out both said 'bundle written'; one was lost."""
    out = tmp_path / "b"
    with writer_lock(out):  # the first writer, in this process
        r = cli("train", tiny_data, "--out", out, "--image-size", 64, "--dim", 8, "--epochs", 0)
    assert r.returncode == 2 and "is being written by another cfnc-edge process" in r.stderr
    assert not (out / "versions").exists()


def test_fit_killed_while_staging_leaves_the_old_bundle(bundle_copy, tiny_data):
    """A real SIGKILL (no clean-up runs) once `fit` has started its new version."""
    import signal
    import time

    old = Bundle.open(bundle_copy).manifest
    p = subprocess.Popen([sys.executable, "-m", "cfnc_edge", "fit", "--bundle", str(bundle_copy), str(tiny_data),
                          "--eps", "0.05"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list((bundle_copy / "versions").glob(".staging-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    assert list((bundle_copy / "versions").glob(".staging-*")), "fit finished before it could be killed"
    assert Bundle.open(bundle_copy).manifest == old
    assert cli("fit", "--bundle", bundle_copy, tiny_data, "--eps", "0.05").returncode == 0
    new = Bundle.open(bundle_copy)
    assert new.manifest["gaussian"]["eps"] == 0.05 and not list((bundle_copy / "versions").glob(".staging-*"))

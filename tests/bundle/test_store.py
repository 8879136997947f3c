"""Transactions: interrupts at every step, a killed writer, concurrent writers,
a reader looping during commits, rollback, copies and pre-versioning bundles."""

import json
import os
import shutil
import threading

import pytest

from cfnc_edge.bundle import GAUSSIAN, MANIFEST, WEIGHTS, Bundle, rollback
from cfnc_edge.errors import BundleError

MODEL = {"backbone": "efficientnet-lite0", "image_size": 64, "feature_dim": 16}


def commit(root, value: float, extra: dict | None = None):
    """A small bundle revision whose two files and threshold all carry `value`."""
    b = Bundle.open(root) if (root / "current").exists() else Bundle(root)
    tag = f"{value}".encode()
    b.write({WEIGHTS: b"w" + tag, GAUSSIAN: b"g" + tag, **(extra or {})}, model=MODEL, threshold={"value": value})
    return b


def consistent(b: Bundle) -> float:
    """The one value a revision's files and threshold share (assert they do)."""
    value = b.manifest["threshold"]["value"]
    assert b.verify(WEIGHTS).read_bytes() == b"w" + f"{value}".encode()
    assert b.verify(GAUSSIAN).read_bytes() == b"g" + f"{value}".encode()
    return value


def test_commits_are_versions_behind_one_link(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    commit(root, 2.0)
    assert os.readlink(root / "current") == "versions/000002"
    b = Bundle.open(root)
    assert b.manifest["revision"]["number"] == 2 and b.manifest["revision"]["parent"] == 1
    assert consistent(b) == 2.0
    # the folder itself still shows the files, through the current version
    assert json.loads((root / MANIFEST).read_text())["threshold"]["value"] == 2.0
    assert (root / WEIGHTS).read_bytes() == b"w2.0"
    assert not list((root / "versions").glob(".staging*"))


def test_write_replaces_every_listed_entry(tmp_path):
    """Bundle.write used to drop only the first listed entry it replaced (item 11)."""
    root = tmp_path / "b"
    commit(root, 1.0)
    b = commit(root, 2.0)
    assert b.manifest["files"] == Bundle.open(root).manifest["files"]
    assert consistent(Bundle.open(root)) == 2.0


@pytest.mark.parametrize("kill", [False, True], ids=["interrupt", "kill"])
def test_every_step_of_a_write_leaves_the_old_or_the_new_state(tmp_path, faults, kill):
    root = tmp_path / "b"
    commit(root, 1.0, {"model.onnx": b"onnx1.0"})
    old = faults.state_of(root)
    if kill:  # the folder as a killed process leaves it, before each step
        snaps = faults.snapshots_during(root, lambda: commit(root, 2.0), tmp_path / "snaps")
        new = faults.state_of(root)
        assert len(snaps) > 10
        states = [faults.state_of(s) for s in snaps]
        assert set(map(str, states)) == {str(old), str(new)}
        for s in snaps:  # the next writer cleans up after the dead one
            commit(s, 3.0)
            assert consistent(Bundle.open(s)) == 3.0 and not list((s / "versions").glob(".staging*"))
        return
    step, seen = 0, []
    while True:
        step += 1
        calls = []

        def interrupt():
            calls.append(1)
            if len(calls) == step:
                raise KeyboardInterrupt

        try:
            with faults.before_each_fs_change(interrupt):
                commit(root, 2.0)
        except KeyboardInterrupt:
            seen.append(consistent(Bundle.open(root)))
            if seen[-1] == 1.0:
                assert str(faults.state_of(root)) == str(old)
            else:  # interrupted after the switch (cleaning up): the new state is complete
                rollback(root)
            continue
        break
    assert step > 10 and set(seen) == {1.0, 2.0}
    assert consistent(Bundle.open(root)) == 2.0
    assert not list((root / "versions").glob(".staging*"))


def test_a_second_writer_gets_a_clear_error(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    held, release = threading.Event(), threading.Event()

    def first():
        with Bundle.open(root).transaction() as b:
            b.write({WEIGHTS: b"w1.5"})
            held.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    held.wait(10)
    try:
        with pytest.raises(BundleError, match="being written by another cfnc-edge process"):
            commit(root, 2.0)
    finally:
        release.set()
        t.join()
    assert Bundle.open(root).verify(WEIGHTS).read_bytes() == b"w1.5"


def test_a_writer_refuses_a_bundle_changed_since_it_opened_it(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    stale = Bundle.open(root)
    commit(root, 2.0)
    with pytest.raises(BundleError, match="changed by another writer since it was opened"):
        stale.write({WEIGHTS: b"lost"})
    assert consistent(Bundle.open(root)) == 2.0


def test_a_reader_looping_during_commits_sees_only_complete_states(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    done, seen, errors = threading.Event(), [], []

    def read():
        while not done.is_set():
            try:
                seen.append(consistent(Bundle.open(root)))
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(2, 40):
        commit(root, float(i))
    done.set()
    for r in readers:
        r.join()
    assert not errors, errors[:3]
    assert len(seen) > 20 and set(seen) <= {float(i) for i in range(1, 40)}


def test_rollback_restores_the_previous_version(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    commit(root, 2.0)
    b = rollback(root)
    assert consistent(b) == 1.0 and b.manifest["revision"]["number"] == 1
    with pytest.raises(BundleError, match="no previous version"):
        rollback(root)
    commit(root, 3.0)  # continues from the rolled-back state
    assert Bundle.open(root).manifest["revision"] == {**Bundle.open(root).manifest["revision"], "parent": 1}


def test_old_versions_are_collected(tmp_path):
    root = tmp_path / "b"
    for i in range(1, 10):
        commit(root, float(i))
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["000007", "000008", "000009"]


def test_a_bundle_copied_without_its_links_still_reads_and_writes(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # links become folders and files
    assert consistent(Bundle.open(copy)) == 1.0
    commit(copy, 2.0)
    assert (copy / "current").is_symlink() and consistent(Bundle.open(copy)) == 2.0


def test_a_bundle_written_before_versioning_is_read_and_migrated(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    (root / WEIGHTS).write_bytes(b"w1.0")
    (root / GAUSSIAN).write_bytes(b"g1.0")
    (root / "model.onnx").write_bytes(b"x")
    import hashlib

    files = {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in (WEIGHTS, GAUSSIAN, "model.onnx")}
    (root / MANIFEST).write_text(json.dumps({"format_version": 1, "files": files, "model": MODEL,
                                             "threshold": {"value": 1.0}}))
    (root / "checkpoint").mkdir()
    assert consistent(Bundle.open(root)) == 1.0
    b = Bundle(root)  # as `train` does: a fresh state replaces the old one
    b.write({WEIGHTS: b"w2.0", GAUSSIAN: b"g2.0"}, model=MODEL, threshold={"value": 2.0})
    assert consistent(Bundle.open(root)) == 2.0
    assert not (root / "model.onnx").exists() and (root / "checkpoint").is_dir()


def test_unlisted_and_linked_files_are_refused(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    folder = Bundle.open(root).dir
    (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.bin is in the bundle but not in its manifest"):
        Bundle.open(root)
    (folder / "extra.bin").unlink()
    (folder / WEIGHTS).unlink()
    os.symlink("/etc/hostname", folder / WEIGHTS)
    with pytest.raises(BundleError, match="is a link, not a file"):
        Bundle.open(root)


def test_opening_the_current_link_itself_pins_one_version(tmp_path):
    root = tmp_path / "b"
    commit(root, 1.0)
    b = Bundle.open(root / "current")
    commit(root, 2.0)
    assert consistent(b) == 1.0 and b.dir.name == "000001"

"""The review folder's files appear whole or not at all: a truncated PNG left
in review/good by a kill mid-write made `cfnc-edge threshold` refuse the folder."""

import os

import cv2
import numpy as np
import pytest

from cfnc_edge.stream.web.review import ReviewStore


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "review", {"path": "B", "revision": 1})
    s.open()
    return s


def frame():
    return np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_a_saved_review_round_trips(store):
    image = frame()
    out = store.save("good", "cam-000", image, {"score": 1.5, "anomalous": True})
    assert out["saved"] == "good/cam-000.png" and out["false_alarms"] == 1
    assert np.array_equal(cv2.imread(str(store.root / "good" / "cam-000.png")), image)


def test_a_save_interrupted_before_the_rename_leaves_no_file(store, monkeypatch):
    def fail(*_):  # the write is done, the rename never happens (a kill at that point)
        raise OSError("interrupted")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        store.save("good", "cam-001", frame(), {"score": 1.0, "anomalous": False})
    # nothing under the final names (and no temporary left beside them)
    assert list((store.root / "good").iterdir()) == []

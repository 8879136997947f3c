import io
import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from stream_helpers import folder_with_a_corrupt_image, synthetic_frames

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import AnnotatedSink, AnomalySink, JsonLinesSink
from cfnc_edge.stream.sources import (
    FolderSource,
    IterableSource,
    SourceLost,
    VideoSource,
    make_source,
)


def run(bundle, sources, sinks=(), **opts):
    out = io.StringIO()
    runner = StreamRunner(Inspector(bundle.path, "torch"), sources, StreamOptions(**opts),
                          sinks=[JsonLinesSink(stream=out), *sinks])
    summary = runner.run()
    return [json.loads(x) for x in out.getvalue().splitlines()], summary


def test_every_video_frame_in_order_with_infer_scores(tiny_bundle, video, tmp_path):
    lines, summary = run(tiny_bundle, [make_source(str(video))], [AnnotatedSink(tmp_path)], max_batch=3)
    assert [x["frame"] for x in lines] == list(range(24)) and summary["frames"] == 24
    assert all({"source", "timestamp", "score", "anomalous", "latency_ms"} <= set(x) for x in lines)
    cap = cv2.VideoCapture(str(video))
    decoded = []
    while (ok := cap.read())[0]:
        decoded.append(ok[1])
    ref = Inspector(tiny_bundle.path, "torch")(decoded)  # what `infer` computes on the same frames
    np.testing.assert_allclose([x["score"] for x in lines], [r.score for r in ref], rtol=1e-4)
    saved = cv2.VideoCapture(str(tmp_path / "line.mp4"))
    assert saved.isOpened() and int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 24


def test_folder_frames_in_order_and_annotated_images(tiny_bundle, folder, tmp_path):
    lines, _ = run(tiny_bundle, [FolderSource(folder)], [AnnotatedSink(tmp_path / "ann"), AnomalySink(tmp_path / "bad")])
    assert [x["frame"] for x in lines] == list(range(10))
    assert sorted(p.name for p in (tmp_path / "ann" / folder.name).iterdir()) == [f"{i:03d}.png" for i in range(10)]
    n_bad = sum(x["anomalous"] for x in lines)
    saved = sorted((tmp_path / "bad" / folder.name).glob("*.json"))
    assert len(saved) == n_bad == len(list((tmp_path / "bad").glob("*/*.png")))
    for meta in saved:  # the original frame beside its record, for `cfnc-edge review`
        record = json.loads(meta.read_text())
        assert record["anomalous"] and record["frame_name"] == meta.stem
        original = cv2.imread(str(meta.parent / "frames" / f"{meta.stem}.png"))
        np.testing.assert_array_equal(original, cv2.imread(str(folder / f"{meta.stem}.png")))


class FlakySource(FolderSource):
    """Raises once, mid-stream, like a camera that drops off the bus."""

    def __init__(self, folder, fail_at):
        super().__init__(folder)
        self.fail_at, self.failed = fail_at, False

    def read(self):
        if self.next_index == self.fail_at and not self.failed:
            self.failed = True
            raise SourceLost("device disconnected")
        return super().read()


def test_a_source_that_fails_mid_stream_is_reopened(tiny_bundle, folder):
    lines, summary = run(tiny_bundle, [FlakySource(folder, 4)], backoff_start_s=0.01)
    assert [x["frame"] for x in lines] == list(range(10))
    assert summary["reconnects"] == 1 and "device disconnected" in summary["outages"][0]


def test_a_corrupt_frame_is_skipped_and_counted(tiny_bundle, folder, tmp_path):
    d = folder_with_a_corrupt_image(folder, tmp_path / "with_corrupt")
    lines, summary = run(tiny_bundle, [FolderSource(d)])
    assert summary["corrupt"] == 1 and summary["frames"] == 5
    assert [x["frame"] for x in lines] == [0, 1, 2, 4, 5]  # index 3 was the corrupt file


def fast_camera(n):
    """A camera that produces frames faster than anyone can inspect them."""
    frames = synthetic_frames(4)
    for i in range(n):
        time.sleep(0.001)
        yield frames[i % 4]


def test_live_sources_drop_stale_frames_and_keep_order(tiny_bundle):
    lines, summary = run(tiny_bundle, [IterableSource(fast_camera(400), "fastcam", live=True)], max_batch=1)
    idx = [x["frame"] for x in lines]
    assert summary["dropped"] > 0 and summary["dropped"] + summary["frames"] <= 400
    assert idx == sorted(idx) and len(set(idx)) == len(idx)


def test_several_sources_share_batches(tiny_bundle, folder, video, monkeypatch):
    sizes = []
    original = Inspector.__call__

    def spy(self, frames):
        sizes.append(len(frames))
        return original(self, frames)

    monkeypatch.setattr(Inspector, "__call__", spy)
    lines, summary = run(tiny_bundle, [FolderSource(folder), make_source(str(video))], max_batch=4, max_wait_ms=50)
    assert summary["frames"] == 34
    assert max(sizes) > 1 and sum(sizes) == 34
    for name, n in ((folder.name, 10), ("line", 24)):
        assert [x["frame"] for x in lines if x["source"] == name] == list(range(n))


def test_unopenable_sources_fail_at_start(tiny_bundle, tmp_path):
    with pytest.raises(CfncError, match="does not exist"):
        VideoSource(str(tmp_path / "missing.mp4")).open()
    with pytest.raises(CfncError, match="holds no images"):
        FolderSource(tmp_path).open()
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "stream", "--bundle", str(tiny_bundle.path),
                        "--camera", "7"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot open camera 7" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_stops_cleanly_with_summary(tiny_bundle, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    frame = synthetic_frames(1)[0]
    for i in range(1500):  # far more than are processed before the signal arrives
        cv2.imwrite(str(d / f"{i:04d}.png"), frame)
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "cfnc_edge", "stream", "--bundle", str(tiny_bundle.path),
                          "--backend", "torch", "--source", str(d), "--max-batch", "1", "--output", str(out)],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 200):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    summary = json.loads(err.split("summary: ", 1)[1])
    lines = [json.loads(x) for x in out.read_text().splitlines()]  # every line complete: outputs flushed
    assert 0 < summary["frames"] == len(lines) < 1500
    assert [x["frame"] for x in lines] == list(range(len(lines)))


class SlowWindow:
    """A display on a slow machine: 1 s per frame."""

    name, lossless = "slow", False

    def __init__(self):
        self.shown = []

    def open(self, ctx):
        pass

    def write(self, v):
        self.shown.append(v.index)
        time.sleep(1.0)

    def close(self):
        pass


def test_a_slow_sink_does_not_hold_inference_or_the_other_sinks(tiny_bundle, video):
    slow = SlowWindow()
    lines, summary = run(tiny_bundle, [make_source(str(video))], [slow])
    assert [x["frame"] for x in lines] == list(range(24))  # the JSON lines record is complete
    # had the window held the pipeline it would have shown all 24; it showed the newest it could
    assert len(slow.shown) < 24 and slow.shown == sorted(slow.shown) and slow.shown[-1] == 23
    assert summary["sinks"]["slow"]["skipped"] == 24 - len(slow.shown)

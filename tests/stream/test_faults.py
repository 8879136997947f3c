"""Issue 10's stream faults, each reproduced: damaged videos, colliding names,
path traversal in a source name, a failed start, a dead source among live
ones, the HTTP outage message, --show without a display."""

import functools
import http.server
import io
import json
import os
import random
import shutil
import subprocess
import sys
import threading

import cv2
import pytest
from stream_helpers import synthetic_frames, write_video

from cfnc_edge import api
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.naming import safe_name, unique
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import AnnotatedSink, AnomalySink, JsonLinesSink
from cfnc_edge.stream.sources import FolderSource, IterableSource, VideoSource

N = 72


def run(bundle, sources, sinks=(), status=None, threshold=None, **opts):
    out = io.StringIO()
    runner = StreamRunner(Inspector(bundle.path, "torch", "fp32", threshold), sources, StreamOptions(**opts),
                          sinks=[JsonLinesSink(stream=out), *sinks], status=status)
    summary = runner.run()
    return [json.loads(x) for x in out.getvalue().splitlines()], summary


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A mp4 with 4 KB overwritten mid-file and an avi cut to half its length, both of 72 frames."""
    d = tmp_path_factory.mktemp("damaged")
    frames = synthetic_frames(N, seed=5)
    mp4 = write_video(d / "scratched.mp4", frames, "mp4v")
    data = bytearray(mp4.read_bytes())
    mid = len(data) // 2
    # seeded, not os.urandom: whether the decoder drops a damaged frame depends on the bytes, and a
    # failing run must be replayable with its --randomly-seed
    data[mid:mid + 4096] = random.Random(5).randbytes(4096)
    mp4.write_bytes(bytes(data))
    avi = write_video(d / "cut.avi", frames)
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    return mp4, avi


@pytest.mark.parametrize("which", [0, 1], ids=["mp4 overwritten", "avi truncated"])
def test_a_damaged_video_is_reported_not_silently_short(tiny_bundle, damaged, which):
    path = damaged[which]
    lines, summary = run(tiny_bundle, [VideoSource(str(path))])
    read = len(lines)
    assert 0 < read < N  # the fault: the file really stops decoding part way
    assert summary["corrupt"] == N - read and summary["frames"] == read
    (warning,) = summary["warnings"]
    assert f"read {read} of the {N} frames" in warning and path.stem in warning
    assert summary["sources"][path.stem]["state"] == "ended early"


def test_an_intact_video_gives_no_warning(tiny_bundle, video):
    _, summary = run(tiny_bundle, [VideoSource(str(video))])
    assert summary["frames"] == 24 and summary["corrupt"] == 0 and summary["warnings"] == []


def test_sources_with_the_same_name_get_their_own_outputs(tiny_bundle, video, tmp_path):
    for sub in ("cam1", "cam2"):
        (tmp_path / sub).mkdir()
        shutil.copy(video, tmp_path / sub / "ok.avi")
    sources = [VideoSource(str(tmp_path / sub / "ok.avi")) for sub in ("cam1", "cam2")]
    lines, summary = run(tiny_bundle, sources, [AnnotatedSink(tmp_path / "saved")])
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["ok-2.mp4", "ok.mp4"]
    for name in ("ok.mp4", "ok-2.mp4"):
        assert int(cv2.VideoCapture(str(tmp_path / "saved" / name)).get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert {x["source"] for x in lines} == {"ok", "ok#2"} and set(summary["sources"]) == {"ok", "ok#2"}


def test_save_anomalies_never_writes_outside_its_folder(tiny_bundle, tmp_path):
    review = tmp_path / "a" / "b" / "review"
    name = "http://cam.local/live?x=/../../../../../escaped"
    # a tiny threshold: every frame is anomalous and saved
    lines, _ = run(tiny_bundle, [IterableSource(synthetic_frames(12), name)], [AnomalySink(review)], threshold=1e-6)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    # each frame: its picture with the heatmap, the original and the record
    assert all(x["anomalous"] for x in lines) and len(written) == 3 * len(lines) == 36
    assert all(p.resolve().is_relative_to(review.resolve()) for p in written)
    assert not (tmp_path / "escaped").exists()


def test_safe_and_unique_names():
    for text in ["../../etc/passwd", "..", ".hidden", "a/b", "x?y=/../z", "", "C:\\win"]:
        n = safe_name(text)
        assert n and "/" not in n and "\\" not in n and not n.startswith(".")
    assert safe_name("ok") == "ok" and safe_name("a/b") != safe_name("a_b")  # changed names are hashed apart
    assert unique(["ok", "ok", "b", "ok"]) == ["ok", "ok-2", "b", "ok-3"]


def test_a_failed_start_keeps_the_existing_output_file(tiny_bundle, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    out.write_text("yesterday's verdicts\n")
    with pytest.raises(CfncError, match="does not exist"):
        api.stream(tiny_bundle.path, [str(tmp_path / "missing.avi")], inspection=api.InspectOptions(backend="torch"), output=out)
    assert out.read_text() == "yesterday's verdicts\n"
    with pytest.raises(CfncError, match="no source could be opened"):
        api.stream(tiny_bundle.path, [str(tmp_path / "missing.avi"), 7], inspection=api.InspectOptions(backend="torch"), output=out)
    assert out.read_text() == "yesterday's verdicts\n"


def test_a_dead_source_is_retried_while_the_others_go_on(tiny_bundle, video, tmp_path):
    late = tmp_path / "late.avi"  # not there at the start: the camera's recording appears later

    def live():
        for i, f in enumerate(synthetic_frames(40)):
            if i == 5:  # whole at once: the late source's retry could open a half-copied file
                shutil.copy(video, tmp_path / "late.partial")
                os.replace(tmp_path / "late.partial", late)
            yield f

    status = io.StringIO()
    lines, summary = run(tiny_bundle, [VideoSource(str(late)), IterableSource(live(), "live")], status=status,
                         backoff_start_s=0.05, backoff_max_s=0.2, max_reopen_files=1000)
    assert "late: cannot open (video file" in summary["outages"][0]
    assert [x["frame"] for x in lines if x["source"] == "live"] == list(range(40))
    assert [x["frame"] for x in lines if x["source"] == "late"] == list(range(24))
    assert summary["sources"]["late"]["reconnects"] == 1 and summary["sources"]["late"]["state"] == "ended"


def test_a_source_that_never_comes_back_is_given_up_and_reported(tiny_bundle, folder, tmp_path):
    lines, summary = run(tiny_bundle, [VideoSource(str(tmp_path / "gone.avi")), FolderSource(folder)],
                         backoff_start_s=0.01, max_reopen_files=2)
    assert len(lines) == 10
    assert summary["sources"]["gone"]["state"] == "gave up"
    assert any("gone: gave up after 3 attempts" in w for w in summary["warnings"])


class _OnceHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the video once, then 404: a camera that went away."""

    served = 0

    def do_GET(self):
        type(self).served += 1
        if type(self).served > 1:
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def test_the_http_outage_message_says_what_happened(tiny_bundle, video):
    handler = type("Once", (_OnceHandler,), {"served": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=video.parent))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{video.name}"
    try:
        status = io.StringIO()
        _, summary = run(tiny_bundle, [VideoSource(url)], status=status, backoff_start_s=0.01, max_reopen=2)
    finally:
        server.shutdown()
    log = status.getvalue()
    assert "NoneType" not in log and "NoneType" not in json.dumps(summary)
    assert "no frame received (stream stalled or disconnected)" in summary["outages"][0]
    assert f"reopen failed (cannot open source {url})" in log
    assert summary["sources"][url]["state"] == "gave up" and summary["frames"] > 0


def test_show_without_a_display_says_so_in_one_line(tiny_bundle, folder, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "stream", "--bundle", str(tiny_bundle.path),
                        "--backend", "torch", "--source", str(folder), "--show",
                        "--output", str(tmp_path / "v.jsonl")], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "--show" in line]
    assert len(said) == 1 and said[0].endswith("not showing frames") and "Traceback" not in r.stderr
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 10

"""The `--web` page and `cfnc-edge review`, driven in a real headless chromium (Debian's, with its driver),
on real servers on free ports. Screenshots for docs/img/ when CFNC_WEB_SCREENSHOTS names a folder."""

import io
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from stream_helpers import synthetic_frames, wait_until

from cfnc_edge.api import InspectOptions, review, stream
from cfnc_edge.errors import CfncError
from cfnc_edge.stream.sinks.web import WebSink
from cfnc_edge.stream.sources import IterableSource

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = os.environ.get("CFNC_WEB_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver; .ci/run does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1320,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)  # a given driver: nothing is downloaded
    yield driver
    driver.quit()


def js(driver, script):
    return driver.execute_script(f"return {script}")


def shoot(driver, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / name))


def get(url, headers=None, data=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Paced:
    """Frames in steps the test releases, so that the page is seen at known points of the stream."""

    def __init__(self, frames, steps):
        self.frames, self.steps = frames, steps
        self.gates = [threading.Event() for _ in steps]

    def __iter__(self):
        start = 0
        for end, gate in zip(self.steps, self.gates):
            yield from self.frames[start:end]
            start = end
            assert gate.wait(120), "the test did not release the stream"


def run_in_thread(**kwargs):
    out = {}
    t = threading.Thread(target=lambda: out.update(summary=stream(**kwargs)), daemon=True)
    t.start()
    return t, out


def test_the_live_page_updates_counts_match_and_good_saves_the_frame(tiny_bundle, browser, tmp_path):
    threshold = float(np.median(tiny_bundle.manifest["threshold"]["good_scores"]))  # about half the frames flagged
    frames = Paced(synthetic_frames(16), [6, 16])
    sink = {}
    t, out = run_in_thread(bundle=tiny_bundle.path, sources=[IterableSource(frames, "line 1")],
                           inspection=InspectOptions(backend="torch", threshold=threshold), output=tmp_path / "v.jsonl", web="127.0.0.1:0",
                           review=tmp_path / "review", status=io.StringIO(),
                           on_start=lambda r: sink.update(web=next(s for s in r.sinks if isinstance(s, WebSink))))
    wait_until(lambda: "web" in sink and sink["web"].server is not None, what="the page to be served")
    url = sink["web"].server.url
    browser.get(url)
    wait_until(lambda: js(browser, "document.querySelector('img.live')?.dataset.frame") == "5", what="frame 5 live")
    frames.gates[0].set()  # ten more frames while the page is open: the live picture follows
    wait_until(lambda: js(browser, "document.querySelector('img.live')?.dataset.frame") == "15", what="frame 15")
    wait_until(lambda: browser.find_element("css selector", "[data-count=frames]").text == "16", what="16 counted")
    wait_until(lambda: js(browser, "document.querySelectorAll('#gallery .item img').length") > 0, what="gallery")
    wait_until(lambda: js(browser, "[...document.querySelectorAll('#gallery img')].every(i => i.naturalWidth > 0)"),
               what="gallery pictures")
    shoot(browser, "web-live.png")
    shown = {k: browser.find_element("css selector", f"[data-count={k}]").text for k in ("frames", "anomalies")}
    item = browser.find_element("css selector", "#gallery .item")
    item.find_element("css selector", "button[data-label=good]").click()
    wait_until(lambda: js(browser, "document.body.dataset.lastReview"), what="the review to be saved")
    saved = tmp_path / "review" / js(browser, "document.body.dataset.lastReview")
    wait_until(lambda: browser.find_element("css selector", "[data-review=false_alarms]").text == "1",
               what="one reviewed false alarm on the page")
    frames.gates[1].set()
    t.join(120)
    summary = out["summary"]
    assert shown == {"frames": str(summary["frames"]), "anomalies": str(summary["anomalies"])}
    assert summary["frames"] == 16 and 0 < summary["anomalies"] < 16
    record = json.loads(saved.with_suffix(".json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    flagged = next(x for x in lines if x["frame"] == record["frame"])
    assert record["label"] == "good" and record["anomalous"] and record["score"] == flagged["score"]
    assert record["bundle"]["path"] == str(tiny_bundle.path) and record["source"] == "line 1"
    assert saved.parent == tmp_path / "review" / "good"
    np.testing.assert_array_equal(__import__("cv2").imread(str(saved)), synthetic_frames(16)[record["frame"]])
    web = summary["sinks"]["web"]
    assert web["views_sent"] >= 2 and web["reviewed"] == {"good": 1, "defect": 0, "false_alarms": 1}


def test_a_non_local_bind_needs_the_token_on_every_request(tiny_bundle, tmp_path):
    with pytest.raises(CfncError, match="--web-token"):
        WebSink("0.0.0.0:0")
    frames = Paced(synthetic_frames(4), [4])
    sink = {}
    t, out = run_in_thread(bundle=tiny_bundle.path, sources=[IterableSource(frames, "cam")],
                           inspection=InspectOptions(backend="torch"), output=tmp_path / "v.jsonl", web="0.0.0.0:0", web_token="s3cret-token",
                           status=io.StringIO(),
                           on_start=lambda r: sink.update(web=next(s for s in r.sinks if isinstance(s, WebSink))))
    wait_until(lambda: "web" in sink and sink["web"].server is not None, what="the page to be served")
    # the server's port: WebSink.open sets its own .port (0 until then) a line after .server
    base = f"http://127.0.0.1:{sink['web'].server.port}"
    wait_until(lambda: get(base + "/api/state?token=s3cret-token")[0] == 200, what="the state")
    for path in ("/", "/api/state", "/static/app.js", "/api/item/0-0.jpg"):
        assert get(base + path)[0] == 401, path
        assert get(base + path + "?token=wrong")[0] == 401, path
    assert get(base + "/api/review/0-0", {"Content-Type": "application/json"}, b'{"label": "good"}')[0] == 401
    assert get(base + "/", {"Authorization": "Bearer s3cret-token"})[0] == 200
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises((InvalidStatus, ConnectionError, OSError)):
        with connect(f"ws://127.0.0.1:{sink['web'].server.port}/ws/live/0") as ws:
            ws.recv(timeout=5)
    with connect(f"ws://127.0.0.1:{sink['web'].server.port}/ws/live/0?token=s3cret-token") as ws:
        assert json.loads(ws.recv(timeout=30))["source"] == "cam"
        assert ws.recv(timeout=30)[:2] == b"\xff\xd8"  # a JPEG
    frames.gates[0].set()
    t.join(60)
    assert out["summary"]["frames"] == 4


def test_local_page_checks_host_and_takes_reviews_only_as_json(tiny_bundle, tmp_path):
    frames = Paced(synthetic_frames(4), [4])
    sink = {}
    t, out = run_in_thread(bundle=tiny_bundle.path, sources=[IterableSource(frames, "cam")],
                           inspection=InspectOptions(backend="torch"), output=tmp_path / "v.jsonl", web=0, review=tmp_path / "rev", status=io.StringIO(),
                           on_start=lambda r: sink.update(web=next(s for s in r.sinks if isinstance(s, WebSink))))
    wait_until(lambda: "web" in sink and sink["web"].server is not None, what="the page to be served")
    base = f"http://127.0.0.1:{sink['web'].server.port}"  # not sink.port: see the test above
    wait_until(lambda: json.loads(get(base + "/api/state")[1])["summary"]["frames"] == 4, what="4 frames")
    assert get(base + "/", {"Host": "attacker.example"})[0] == 400  # DNS rebinding
    assert get(base + "/api/review/0-3", {"Content-Type": "text/plain"}, b'{"label": "good"}')[0] == 415
    assert get(base + "/api/review/0-3", {"Content-Type": "application/json"}, b'{"label": "../x"}')[0] == 400
    assert get(base + "/api/review/..%2F..%2Fetc", {"Content-Type": "application/json"}, b'{"label": "good"}')[0] == 404
    status, body = get(base + "/api/review/0-3", {"Content-Type": "application/json"}, b'{"label": "defect"}')
    assert status == 200 and json.loads(body)["defect"] == 1
    frames.gates[0].set()
    t.join(60)
    written = sorted(p.relative_to(tmp_path / "rev") for p in (tmp_path / "rev").rglob("*") if p.is_file())
    assert [p.parent.name for p in written] == ["defect", "defect"] and {p.suffix for p in written} == {".png", ".json"}


def test_review_page_over_saved_anomalies_feeds_threshold_and_fit(tiny_bundle, tiny_data, browser, tmp_path):
    from cfnc_edge.api import refit, set_threshold
    from cfnc_edge.bundle import Bundle

    saved = tmp_path / "anomalies"
    stream(tiny_bundle.path, [IterableSource(synthetic_frames(8), "line 1")],
           inspection=InspectOptions(backend="torch", threshold=1e-6), output=tmp_path / "v.jsonl", save_anomalies=saved)  # every frame flagged and saved
    server = review(saved, tiny_bundle.path, 0, inspection=InspectOptions(backend="torch"))
    try:
        browser.get(server.url)
        wait_until(lambda: js(browser, "document.querySelectorAll('#gallery .item').length") == 8, what="8 items")
        wait_until(lambda: js(browser, "[...document.querySelectorAll('#gallery img')].every(i => i.naturalWidth > 0)"),
                   what="the pictures")
        shoot(browser, "web-review.png")
        for k, label in enumerate(("good", "good", "defect")):
            browser.find_element("css selector", f"#gallery .item button[data-label={label}]").click()
            wait_until(lambda: js(browser, "document.querySelectorAll('#gallery .item').length") == 7 - k,
                       what="the reviewed item to leave the gallery")
        wait_until(lambda: browser.find_element("css selector", "[data-review=good]").text == "2", what="2 good")
        commands = browser.find_element("css selector", "#review-commands").text
    finally:
        server.stop()
    good = saved / "reviewed" / "good"
    assert len(list(good.glob("*.png"))) == 2 and len(list((saved / "reviewed" / "defect").glob("*.png"))) == 1
    assert f"cfnc-edge threshold --bundle {tiny_bundle.path} {good}" in commands
    # the commands the page shows accept the folder: threshold from its images, fit with them beside the data
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, copy, symlinks=True)
    info = set_threshold(copy, [good], target_fpr=0.4, inspection=InspectOptions(backend="torch"),
                         progress=False)  # 2 images hold 40%
    assert info["n"] == 2 and len(info["good_scores"]) == 2
    b = refit(copy, [tiny_data, good], progress=False)
    n_train = len(list((tiny_data / "train" / "good").glob("*.png")))
    assert b.manifest["data"]["fit_images"] == n_train + 2 and b.manifest["data"]["also"] == [str(good)]
    assert Bundle.open(copy).manifest["data"]["root"] == str(tiny_data)


def test_cli_review_serves_until_interrupted_and_stream_refuses_an_open_bind(tiny_bundle, tmp_path):
    import signal
    import subprocess
    import sys

    saved = tmp_path / "anomalies"
    stream(tiny_bundle.path, [IterableSource(synthetic_frames(2), "cam")],
           inspection=InspectOptions(backend="torch", threshold=1e-6), output=tmp_path / "v.jsonl", save_anomalies=saved)
    p = subprocess.Popen([sys.executable, "-m", "cfnc_edge", "review", str(saved), "--bundle", str(tiny_bundle.path),
                          "--web", "0", "--backend", "torch"], stderr=subprocess.PIPE, text=True,
                         # Ctrl-C as from a terminal: a test run started in the background (`cmd &` in a script)
                         # ignores SIGINT, and an ignored signal stays ignored in the children it starts
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = p.stderr.readline()
        assert line.startswith("review page: http://127.0.0.1:"), line
        url = line.split()[2]
        status, body = get(url + "api/state")
        assert status == 200 and json.loads(body)["saved"] == 2
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
    r = subprocess.run([sys.executable, "-m", "cfnc_edge", "stream", "--bundle", str(tiny_bundle.path), "--source",
                        str(saved), "--web", "0.0.0.0:0"], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "CFNC_WEB_TOKEN"})
    assert r.returncode == 2 and "--web-token" in r.stderr and "Traceback" not in r.stderr

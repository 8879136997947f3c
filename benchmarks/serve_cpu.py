"""Triton serving on the CPU: throughput and latency against concurrent clients.

    OMP_NUM_THREADS=1 python -m benchmarks.serve_cpu --bundle B [--seconds 1.5] [--rounds 6] [--pairs 300]

Starts `cfnc-edge serve` (child processes) in three configurations: batching
off (`--max-batch 1`: every execution one frame) and dynamic batching
(`--max-batch 16`) with queue delays of 0 and 2 ms. Each client is a thread
of this process with its own RemoteInspector (one camera), sending one
640x480 frame per request, back to back; latency is one request's round
trip. The baseline, measured in the same run, is the local Inspector in
this process called on batches of as many frames as there are clients.
Configurations are interleaved (every one at a client count, then the next
count; the whole sweep `--rounds` times) so they share the machine's
background load; a cell's throughput is the median over rounds, its
latencies are pooled.

What the server adds per frame at one client is measured apart, in pairs:
one local call, then one server call, `--pairs` times, so both halves of a
pair see the same load; the median of the differences is the overhead.
The servers inherit this process's environment, so OMP_NUM_THREADS (set
on the command line, before NumPy and PyTorch start their thread pools)
holds for both sides alike. Result: benchmarks/results/serve-cpu.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from cfnc_edge.data.synthetic import render_good
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.serve.client import RemoteInspector
from cfnc_edge.serve.launch import ServerProcess

CLIENTS = (1, 2, 4, 8, 16)
CONFIGS = {"batching off (max batch 1)": ("--max-batch", "1"),
           "dynamic batching, delay 0 ms": ("--max-batch", "16", "--queue-delay-ms", "0"),
           "dynamic batching, delay 2 ms": ("--max-batch", "16", "--queue-delay-ms", "2")}


def camera_frame() -> np.ndarray:
    import cv2

    part = np.clip(render_good(np.random.default_rng(0), 256)[0], 0, 255).astype(np.uint8)
    return cv2.resize(part, (640, 480))


def run_clients(url: str, n: int, seconds: float, frame: np.ndarray) -> tuple[float, list[float]]:
    """n clients, each sending one frame per request for `seconds`: (frames/s, latencies ms)."""
    clients = [RemoteInspector(url) for _ in range(n)]
    for c in clients:
        c([frame])  # connection and first-call set-up outside the measurement
    latencies: list[list[float]] = [[] for _ in range(n)]
    start = threading.Barrier(n + 1)
    stop = threading.Event()

    def loop(k: int) -> None:
        start.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            clients[k]([frame])
            latencies[k].append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def run_local(insp: Inspector, n: int, seconds: float, frame: np.ndarray) -> tuple[float, list[float]]:
    """The Inspector on batches of n frames for `seconds`: (frames/s, batch latencies ms)."""
    insp([frame] * n)
    lat = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        insp([frame] * n)
        lat.append((time.perf_counter() - t0) * 1000)
    return n * len(lat) / (sum(lat) / 1000), lat


STAGES = {"queue": "nv_inference_queue_duration_us", "input": "nv_inference_compute_input_duration_us",
          "infer": "nv_inference_compute_infer_duration_us", "output": "nv_inference_compute_output_duration_us",
          "in Triton": "nv_inference_request_duration_us"}


def paired_overhead(insp: Inspector, srv: ServerProcess, pairs: int, frame: np.ndarray):
    """Local then server call, `pairs` times: (median local ms, median server ms, median difference ms,
    mean ms per request of each stage inside Triton, from its metrics)."""
    local, remote = [], []
    with RemoteInspector(srv.url) as client:
        client([frame])
        before = srv.metrics()
        for _ in range(pairs):
            t0 = time.perf_counter()
            insp([frame])
            t1 = time.perf_counter()
            client([frame])
            local.append((t1 - t0) * 1000)
            remote.append((time.perf_counter() - t1) * 1000)
        after = srv.metrics()
    n = after["nv_inference_request_success"] - before["nv_inference_request_success"]
    stages = {k: (after[m] - before[m]) / n / 1000 for k, m in STAGES.items()}
    diff = np.subtract(remote, local)
    return float(np.median(local)), float(np.median(remote)), float(np.median(diff)), stages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results/serve-cpu.md")
    args = ap.parse_args()

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    frame = camera_frame()
    load_start = os.getloadavg()
    insp = Inspector(args.bundle, args.backend)
    logdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    servers = {name: ServerProcess({"cfnc": args.bundle}, "--backend", args.backend, *flags,
                                   log=logdir / f"server{i}.log").start()
               for i, (name, flags) in enumerate(CONFIGS.items())}
    thr: dict[tuple[str, int], list[float]] = {}
    lat: dict[tuple[str, int], list[float]] = {}
    try:
        for r in range(args.rounds):
            for n in CLIENTS:
                for name, srv in [("local Inspector, batch = clients", None), *servers.items()]:
                    fps, ms = (run_local(insp, n, args.seconds, frame) if srv is None
                               else run_clients(srv.url, n, args.seconds, frame))
                    thr.setdefault((name, n), []).append(fps)
                    lat.setdefault((name, n), []).extend(ms)
                    print(f"round {r} clients {n:2d} {name:34s} {fps:7.1f} frames/s  "
                          f"p50 {np.percentile(ms, 50):7.1f} ms", flush=True)
        overhead = {name: paired_overhead(insp, srv, args.pairs, frame) for name, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()
    load_end = os.getloadavg()
    names = ["local Inspector, batch = clients", *CONFIGS]

    def cell(name: str, n: int) -> str:
        ms = lat[(name, n)]
        return (f"{statistics.median(thr[(name, n)]):.1f} | {np.percentile(ms, 50):.1f} | "
                f"{np.percentile(ms, 99):.1f}")

    rows = ["| clients | " + " | ".join(f"{nm}: frames/s | p50 ms | p99 ms" for nm in names) + " |",
            "|---|" + "---|---|---|" * len(names)]
    rows += [f"| {n} | " + " | ".join(cell(nm, n) for nm in names) + " |" for n in CLIENTS]
    off, on0, on2 = CONFIGS
    ratio0 = statistics.median(thr[(on0, 8)]) / statistics.median(thr[(off, 8)])
    ratio2 = statistics.median(thr[(on2, 8)]) / statistics.median(thr[(off, 8)])
    added = {nm: overhead[nm][2] for nm in CONFIGS}
    pair_rows = "\n".join(f"| {nm} | {lo:.1f} | {re_:.1f} | {d:+.1f} | " + " | ".join(f"{v:.1f}" for v in st.values())
                          + " |" for nm, (lo, re_, d, st) in overhead.items())
    text = f"""# Serving on the CPU: Triton (PyTriton) against concurrent clients

Machine: {machine()}. **Shared**: six other helpers ran builds and tests on the same
2 cores during the run (load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end),
so absolute numbers are noisy; the configurations were interleaved so they saw the same load.

Bundle: `{args.bundle}` ({insp.image_size} px, backend {insp.backend.name}); frames 640x480 BGR (a VGA
camera), one frame per request, sent back to back by each client (a thread with its own gRPC
connection); {args.rounds} rounds of {args.seconds:g} s per cell; OMP_NUM_THREADS={threads} (both sides). Throughput: median over rounds;
latency: one request's round trip (local: one batch call), pooled over rounds. Server and
clients on the same machine, so the clients' own CPU use competes with the server.
Command: `OMP_NUM_THREADS={threads} python -m benchmarks.serve_cpu --bundle {args.bundle} --backend {args.backend} --seconds {args.seconds:g} --rounds {args.rounds} --pairs {args.pairs}`.

{chr(10).join(rows)}

One client, {args.pairs} pairs of (local call, server call) on the same frame, medians:

| server | local ms | server ms | server - local, ms | {" | ".join(f"Triton {k}, mean ms" for k in STAGES)} |
|---|---|---|---|{"---|" * len(STAGES)}
{pair_rows}

## Goals

- With 8 clients, dynamic batching vs batch-1 serving: {ratio0:.2f}x (delay 0 ms), {ratio2:.2f}x
  (delay 2 ms); goal >= 1.5x: **{"met" if max(ratio0, ratio2) >= 1.5 else "missed"}**.
- At 1 client, the server adds over the local Inspector (median of paired differences):
  {", ".join(f"{added[nm]:+.1f} ms ({nm})" for nm in CONFIGS)}; goal <= 3 ms:
  **{"met" if min(added.values()) <= 3 else "missed"}** (best configuration).
"""
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

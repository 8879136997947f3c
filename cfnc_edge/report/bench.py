"""`cfnc-edge bench`: every backend and precision present, on the same images.

Each (backend, precision) runs in its own process so that peak memory is its
own. Latency is per call (a batch), measured after warm-up over many repeats;
the split between stages comes from the Inspector's own timers, so what is
measured is exactly what `infer` and `stream` run.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cfnc_edge.bundle import Bundle
from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.data.bundle_images import image_paths
from cfnc_edge.images import read_image
from cfnc_edge.resources import peak_rss_mib
from cfnc_edge.runtime.artefacts import ONNX_FILES
from cfnc_edge.runtime.inspector import Inspector


def available(bundle: Bundle) -> list[tuple[str, str]]:
    combos = [("torch", "fp32")]
    combos += [("onnxruntime", p) for p, f in ONNX_FILES.items() if bundle.has(f)]
    from cfnc_edge.runtime.backends import tensorrt_available, torch_cuda_available

    if tensorrt_available():
        from cfnc_edge.runtime.gpu.engines import engine_precisions

        combos += [("tensorrt", p) for p in engine_precisions(bundle)]
    if torch_cuda_available():
        from cfnc_edge.runtime.backends.torch_cuda_backend import PRECISIONS

        combos += [("torch-cuda", p) for p in PRECISIONS]
    return combos


def bench_frames(bundle: Bundle, images: Path | None, n: int) -> list[Path]:
    paths = image_paths(bundle, images)
    return [paths[i % len(paths)] for i in range(n)]


def _run(args) -> list[dict]:
    bundle_path, backend, precision, paths, batch_sizes, warmup, repeats = args
    frames = [read_image(p) for p in paths]
    insp = Inspector(bundle_path, backend, precision)
    rows = []
    for bs in batch_sizes:
        batch = frames[:bs]
        for _ in range(warmup):
            insp(batch)
        insp.reset_timings()
        lat = []
        for _ in range(repeats):
            t = time.perf_counter()
            insp(batch)
            lat.append(time.perf_counter() - t)
        lat_ms = np.array(lat) * 1000
        row = {"backend": backend, "precision": precision, "batch": bs,
               "provider": getattr(insp.backend, "provider", backend),
               "p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99)),
               "images_per_s": float(bs * 1000 / np.mean(lat_ms))}
        # the stages this Inspector recorded: STAGES, or a GPU frame path's (staging, graph)
        row.update({f"{s}_ms": float(np.median(t) * 1000) for s, t in insp.timings.items()})
        rows.append(row)
    peak = peak_rss_mib()
    for r in rows:
        r["peak_rss_mib"] = round(peak)
    return rows


def run_bench(bundle_path: Path | str, images: Path | None = None, batch_sizes=(1, 8), warmup: int = 3,
              repeats: int = 30, combos: list[tuple[str, str]] | None = None, progress: bool = True) -> list[dict]:
    bundle = Bundle.open(bundle_path)
    combos = combos or available(bundle)
    paths = bench_frames(bundle, images, max(batch_sizes))
    ctx = mp.get_context("spawn")
    rows: list[dict] = []
    for backend, precision in tqdm(combos, desc="bench", disable=not progress, unit="backend"):
        with ctx.Pool(1) as pool:
            rows += pool.map(_run, [(str(bundle.path), backend, precision, paths, tuple(batch_sizes),
                                     warmup, repeats)])[0]
    return rows


COLUMNS = ["backend", "precision", "provider", "batch", "p50_ms", "p99_ms", "images_per_s",
           "preprocess_ms", "features_ms", "distance_ms", "postprocess_ms", "staging_ms", "graph_ms", "peak_rss_mib"]


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "" if v is None else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |\n" for r in rows)


def write_results(rows: list[dict], out: Path, header: str = "", stem: str = "bench") -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / f"{stem}.json").write_text(strict_json(rows, indent=2))
    (out / f"{stem}.md").write_text(header + markdown_table(rows))

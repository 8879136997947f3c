"""GPU benchmarks (run by benchmarks/gpu_check.sh on a GPU machine), into one folder.

1. The Mahalanobis step at P = 56*56 positions, d = 100, batch 1 and 32,
   fp16 and fp32 factor storage: the CUDA kernel against its bandwidth floor
   (the bytes it must move over the device-to-device copy bandwidth measured
   in the same run, and over the card's peak where the driver reports it),
   and against baselines on the same data: cupy.einsum and torch.einsum with
   the full inverse covariance (the straightforward implementation), and a
   batched GEMM with the dense factor (cuBLAS).
2. Frame to verdict: the whole Inspector, camera-sized BGR frames in, scores
   and maps on the host out, for each GPU backend available (torch-cuda fp32
   and fp16 with and without CUDA graphs; TensorRT fp32, fp16 and int8 where
   TensorRT is installed): latency at batch 1, throughput at batch 32, beside
   ONNX Runtime on this machine's CPU as the baseline of the same run.

Every backend is measured even if one fails; the script then exits non-zero
naming the failures, so the check fails loudly with the rest still written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from benchmarks.common import machine

POSITIONS, DIM = 56 * 56, 100
FRAME = (480, 640)  # frames as a camera delivers them; the Inspector resizes


def time_cupy(fn, repeats=50) -> float:
    """Median ms of fn on CuPy's current stream, by CUDA events."""
    import cupy as cp

    for _ in range(5):
        fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end))
    return float(np.median(times))


def time_torch(fn, repeats=50) -> float:
    """Median ms of fn on PyTorch's current stream, by CUDA events."""
    import torch

    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def bandwidths() -> dict:
    """Measured device-to-device copy bandwidth, and the spec peak if the driver reports the memory clock."""
    import cupy as cp

    a = cp.ones(256 * 2**20, dtype=cp.float32)  # 1 GiB
    b = cp.empty_like(a)
    ms = time_cupy(lambda: b.__setitem__(Ellipsis, a), repeats=10)
    out = {"copy_GBps": 2 * a.nbytes / ms / 1e6}
    try:  # cudaDevAttrMemoryClockRate (kHz), cudaDevAttrGlobalMemoryBusWidth (bits)
        clock, bus = cp.cuda.runtime.deviceGetAttribute(36, 0), cp.cuda.runtime.deviceGetAttribute(37, 0)
        if clock and bus:
            out["peak_GBps"] = 2 * clock * 1e3 * bus / 8 / 1e9
    except Exception:  # noqa: BLE001 - newer drivers may not report it; the measured copy is the floor used
        pass
    return out


def kernel_rows(bw: dict) -> list[dict]:
    import cupy as cp
    import torch

    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis
    from cfnc_edge.scoring.reference import random_problem
    from cfnc_edge.scoring.packing import unpack

    rng = np.random.default_rng(0)
    packed64, mean, _ = random_problem(rng, 1, DIM, POSITIONS)
    packed, mean = packed64.astype(np.float32), mean.astype(np.float32)
    w = unpack(packed, DIM)
    inv = cp.asarray(w.transpose(0, 2, 1) @ w)  # W^T W: the full inverse covariance
    dense = cp.asarray(unpack(packed, DIM).astype(np.float32))
    floor = lambda moved: 1e3 * moved / (bw["copy_GBps"] * 1e9)  # noqa: E731
    out = []
    for batch in (1, 32):
        x = cp.asarray(rng.normal(size=(batch, DIM, POSITIONS, 1)).astype(np.float32))
        dist_bytes = batch * POSITIONS * 4
        for storage in ("int8", "fp16", "fp32"):
            k = GpuMahalanobis(mean, packed, storage)
            scale = 0 if k.storage != "int8" else k.scale.nbytes
            moved = k.factor.nbytes + scale + x.nbytes + mean.nbytes + dist_bytes
            out.append({"method": f"packed kernel ({storage} factor)", "batch": batch, "ms": time_cupy(lambda: k(x)),
                        "floor_ms": floor(moved), "MB_moved": moved / 1e6})
        delta = cp.ascontiguousarray((x[..., 0].transpose(0, 2, 1) - cp.asarray(mean)).astype(cp.float32))  # (B,P,d)
        moved = inv.nbytes + delta.nbytes + dist_bytes
        out.append({"method": "full inverse, cupy.einsum", "batch": batch,
                    "ms": time_cupy(lambda: cp.einsum("bpi,pij,bpj->bp", delta, inv, delta)),
                    "floor_ms": floor(moved), "MB_moved": moved / 1e6})
        t_delta, t_inv = torch.from_dlpack(delta), torch.from_dlpack(inv)
        torch.cuda.synchronize()
        out.append({"method": "full inverse, torch.einsum", "batch": batch,
                    "ms": time_torch(lambda: torch.einsum("bpi,pij,bpj->bp", t_delta, t_inv, t_delta)),
                    "floor_ms": floor(moved), "MB_moved": moved / 1e6})
        d_t = cp.ascontiguousarray(delta.transpose(1, 2, 0))  # (P, d, B)
        moved = dense.nbytes + d_t.nbytes + dist_bytes
        out.append({"method": "dense factor, batched GEMM (cuBLAS)", "batch": batch,
                    "ms": time_cupy(lambda: (cp.matmul(dense, d_t) ** 2).sum(1)),
                    "floor_ms": floor(moved), "MB_moved": moved / 1e6})
    return out


def make_bundle(work: Path, log):
    """A demo-sized bundle (224 px, d = 100), trained briefly: latency does not depend on how well."""
    from cfnc_edge.api import train
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.deploy.export import export
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    data = generate_dataset(work / "data", n_train=32, n_test_good=4, n_per_defect=2, progress=False)
    bundle = train(data, work / "bundle", ModelConfig(), TrainConfig(epochs=1), progress=False)
    export(bundle, log=log)
    return bundle, data


def frames_of(data: Path, n: int = 32) -> list[np.ndarray]:
    import cv2

    from cfnc_edge.images import read_image

    paths = sorted((data / "test").glob("*/*.png"))
    return [cv2.resize(read_image(paths[i % len(paths)]), FRAME[::-1]) for i in range(n)]


def torch_cuda_combos() -> list[tuple[str, str]]:
    from cfnc_edge.runtime.backends import torch_cuda_available

    if not torch_cuda_available():
        return []
    return [(b, p) for b in ("torch-cuda", "torch-cuda-graphs") for p in ("fp32", "fp16")]


def tensorrt_combos(bundle, log) -> list[tuple[str, str]]:
    """Build the engines (INT8 from a calibrated Q/DQ model) where TensorRT is installed."""
    from cfnc_edge.runtime.backends import tensorrt_available

    if not tensorrt_available():
        return []
    from cfnc_edge.deploy.calibrate import calibrate
    from cfnc_edge.deploy.engine import build_engine

    calibrate(bundle, n=32, log=log)
    for p in ("fp32", "fp16", "int8"):
        build_engine(bundle, p, 1, 8, 32, log=log)
    return [("tensorrt", p) for p in ("fp32", "fp16", "int8")]


def end_to_end(bundle, backend: str, precision: str, frames, plan) -> list[dict]:
    from cfnc_edge.runtime.inspector import STAGES, Inspector

    insp = Inspector(bundle, backend, precision)
    rows = []
    for batch, repeats in plan:
        chunk = frames[:batch]
        for _ in range(5):
            insp(chunk)
        insp.reset_timings()
        lat = []
        for _ in range(repeats):
            t = time.perf_counter()
            verdicts = insp(chunk)
            lat.append(time.perf_counter() - t)
        assert len(verdicts) == batch and all(np.isfinite(v.score) for v in verdicts)
        ms = np.array(lat) * 1e3
        rows.append({"backend": backend, "precision": precision, "provider": insp.backend.provider,
                     "device": insp.backend.device, "batch": batch, "p50_ms": float(np.median(ms)),
                     "p99_ms": float(np.percentile(ms, 99)), "images_per_s": float(batch * 1e3 / ms.mean()),
                     **{f"{s}_ms": float(np.median(insp.timings[s]) * 1e3) for s in STAGES}})
    return rows


def write(out: Path, head: list[str], kernel: list[dict], e2e: list[dict], errors: list[str]) -> None:
    lines = head + ["## Mahalanobis step, P = 3136, d = 100", "",
                    "| method | batch | ms (median) | bandwidth floor ms | x floor | MB moved |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['batch']} | {r['ms']:.4f} | {r['floor_ms']:.4f} | {r['ms'] / r['floor_ms']:.1f} "
              f"| {r['MB_moved']:.1f} |" for r in kernel]
    cols = ["backend", "precision", "device", "batch", "p50_ms", "p99_ms", "images_per_s", "preprocess_ms",
            "features_ms", "distance_ms", "postprocess_ms", "provider"]
    lines += ["", f"## Frame ({FRAME[1]}x{FRAME[0]} BGR) to verdict, whole Inspector", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
              for r in e2e]
    if errors:
        lines += ["", "## Failures", ""] + [f"- {e}" for e in errors]
    (out / "gpu-bench.md").write_text("\n".join(lines) + "\n")
    (out / "gpu-bench.json").write_text(json.dumps({"kernel": kernel, "end_to_end": e2e, "errors": errors}, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    from cfnc_edge.deploy.cuda_stack import driver_cuda
    from cfnc_edge.runtime.gpu.device import gpu_info

    gpu, driver = gpu_info(0), driver_cuda()
    cuda = f"{driver[0]}.{driver[1]}" if driver else "unknown"
    bw = bandwidths()
    head = ["# GPU benchmarks", "", f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
            f"{machine()}; GPU {gpu.name} (sm{gpu.compute_capability}, {gpu.memory_gib:.0f} GiB), driver CUDA "
            f"{cuda}.", "",
            f"Bandwidth: device-to-device copy {bw['copy_GBps']:.0f} GB/s measured (the floor below uses it)"
            + (f", peak {bw['peak_GBps']:.0f} GB/s from the memory clock" if "peak_GBps" in bw else "") + ".", ""]
    kernel = kernel_rows(bw)
    write(out, head, kernel, [], [])
    print((out / "gpu-bench.md").read_text(), flush=True)
    errors, e2e = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bundle, data = make_bundle(Path(tmp), print)
        frames = frames_of(data)
        combos = torch_cuda_combos()
        try:
            combos += tensorrt_combos(bundle, print)
        except Exception as exc:  # noqa: BLE001 - recorded, and the exit code says so
            errors.append(f"TensorRT engines: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        plans = [(c, ((1, 100), (32, 20))) for c in combos] + [(("onnxruntime", "fp32"), ((1, 30), (32, 5)))]
        for (backend, precision), plan in plans:
            try:
                e2e += end_to_end(bundle, backend, precision, frames, plan)
            except Exception as exc:  # noqa: BLE001 - every backend is measured; failures are listed and fail the run
                errors.append(f"{backend} {precision}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            write(out, head, kernel, e2e, errors)
    print((out / "gpu-bench.md").read_text())
    if errors:
        print("FAILED: " + "; ".join(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

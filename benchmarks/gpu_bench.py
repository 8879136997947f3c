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
   TensorRT is installed): latency at batch 1 (p50, p99), throughput at batch
   8, 32 and 64, beside ONNX Runtime on this machine's CPU as the baseline of
   the same run. torch-cuda runs twice: the captured frame path (resize to
   maps in one CUDA graph, runtime/gpu/frame_graph.py: what the Inspector
   uses) and the old per-stage path (host resize, the model captured alone,
   GPU distance and maps: `frame_path=False`). The stage split of the
   captured path is measured on the same steps run eagerly (a graph has
   no stages to time), synchronised between steps.
3. AnomaVision's own GPU path (its PaDiM, ResNet-18, d = 100, PyTorch on this
   GPU; the frames resized on the host as its pipeline does), same frames and
   batches, and the ratio of each row's throughput to it at the same batch.

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


def frames_of(data: Path, n: int = 64) -> list[np.ndarray]:
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


def stage_split(insp, frames, repeats: int = 20) -> str:
    """Median ms of each step of the frame path, run eagerly with a sync between steps."""
    import torch

    path = insp.frame_path.path
    with torch.inference_mode(), torch.cuda.stream(insp.frame_path.torch_stream):
        x = torch.from_numpy(np.stack(frames)).to(insp.backend.gpu)
        steps = {"resize": lambda: path.preprocess(x)}
        images = steps["resize"]()
        steps["model"] = lambda: path.forward(images)
        feats, theta = steps["model"]()
        steps["distance"] = lambda: path.distance(feats)
        dist = steps["distance"]()
        steps["maps"] = lambda: path.maps(dist, theta).amax((1, 2))
        return ", ".join(f"{k} {time_torch(f, repeats):.3f}" for k, f in steps.items())


def end_to_end(bundle, backend: str, precision: str, frames, plan, frame_path: bool = True) -> list[dict]:
    from cfnc_edge.runtime.inspector import Inspector

    insp = Inspector(bundle, backend, precision, frame_path=frame_path)
    path = "captured frame" if insp.frame_path is not None else "per-stage"
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
        split = ", ".join(f"{s} {np.median(t) * 1e3:.3f}" for s, t in insp.timings.items())
        if insp.frame_path is not None:
            split += "; eager steps: " + stage_split(insp, chunk)
        rows.append({"backend": backend, "precision": precision, "path": path, "provider": insp.backend.provider,
                     "device": insp.backend.device, "batch": batch, "p50_ms": float(np.median(ms)),
                     "p99_ms": float(np.percentile(ms, 99)), "images_per_s": float(batch * 1e3 / ms.mean()),
                     "stages_ms": split})
    return rows


def anomavision_gpu(frames, plan, device: str = "cuda") -> list[dict]:
    """AnomaVision's PaDiM (ResNet-18, layers 1-3, d = 100, random weights as in
    benchmarks/peers.py) on this GPU: frames resized and normalised on the host,
    predict and its adaptive Gaussian blur on the GPU, scores to the host."""
    import importlib.util
    import sys
    import types

    import cv2
    import torch
    import torchvision

    # its package __init__ imports its GUI, plotting and dataset stack (matplotlib, scikit-image, ...),
    # which the offline GPU image lacks and PaDiM does not use: the package is entered without it
    spec = importlib.util.find_spec("anomavision")
    if spec is None:
        raise ModuleNotFoundError("anomavision is not installed")
    pkg = types.ModuleType("anomavision")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("anomavision", pkg)
    from anomavision.algorithm.common import feature_extraction
    from anomavision.algorithm.padim.padim import Padim
    from anomavision.utils import adaptive_gaussian_blur

    from benchmarks.peers import DIM

    torch.manual_seed(0)
    feature_extraction.BACKBONES["resnet18"] = (torchvision.models.resnet18, None)
    gpu = torch.device(device)  # "cpu": the dry run on a machine without a GPU
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def batch_of(chunk):
        x = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA)[:, :, ::-1] for f in chunk])
        return ((torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255 - mean) / std).to(gpu)

    model = Padim(backbone="resnet18", device=gpu, layer_indices=[0, 1, 2], feat_dim=DIM)
    model.fit([batch_of(frames[i:i + 8]) for i in range(0, len(frames), 8)])
    model.eval()
    rows = []
    for batch, repeats in plan:
        chunk = frames[:batch]

        def run():
            with torch.inference_mode():
                scores, maps = model.predict(batch_of(chunk))
                adaptive_gaussian_blur(maps, kernel_size=33, sigma=4)
                return torch.as_tensor(scores).cpu()
        for _ in range(5):
            run()
        lat = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            lat.append(time.perf_counter() - t)
        ms = np.array(lat) * 1e3
        rows.append({"backend": "AnomaVision PaDiM R18", "precision": "fp32", "path": "its own", "device": device,
                     "provider": f"PyTorch {torch.__version__}", "batch": batch, "p50_ms": float(np.median(ms)),
                     "p99_ms": float(np.percentile(ms, 99)), "images_per_s": float(batch * 1e3 / ms.mean()),
                     "stages_ms": ""})
    return rows


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row's throughput over AnomaVision's GPU path at the same batch."""
    peer = {r["batch"]: r["images_per_s"] for r in rows if r["backend"].startswith("AnomaVision")}
    return [{**r, "x_anomavision": f"{r['images_per_s'] / peer[r['batch']]:.2f}x" if r["batch"] in peer else "n/a"}
            for r in rows]


def write(out: Path, head: list[str], kernel: list[dict], e2e: list[dict], errors: list[str]) -> None:
    lines = head + ["## Mahalanobis step, P = 3136, d = 100", "",
                    "| method | batch | ms (median) | bandwidth floor ms | x floor | MB moved |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['batch']} | {r['ms']:.4f} | {r['floor_ms']:.4f} | {r['ms'] / r['floor_ms']:.1f} "
              f"| {r['MB_moved']:.1f} |" for r in kernel]
    e2e = with_ratios(e2e)
    cols = ["backend", "precision", "path", "device", "batch", "p50_ms", "p99_ms", "images_per_s", "x_anomavision",
            "stages_ms", "provider"]
    lines += ["", f"## Frame ({FRAME[1]}x{FRAME[0]} BGR) to verdict, whole Inspector", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
              for r in e2e]
    if errors:
        lines += ["", "## Failures", ""] + [f"- {e}" for e in errors]
    (out / "gpu-bench.md").write_text("\n".join(lines) + "\n")
    (out / "gpu-bench.json").write_text(json.dumps({"kernel": kernel, "end_to_end": e2e, "errors": errors}, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu-bench.md and gpu-bench.json")
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
        gpu_plan = ((1, 200), (8, 30), (32, 20), (64, 10))
        # the captured frame path for torch-cuda, and the old per-stage path beside it (model graph alone)
        runs = [(b, p, True) for b, p in combos if b == "torch-cuda"]
        runs += [(b, p, False) for b, p in combos if b == "torch-cuda-graphs"]
        runs += [(b, p, True) for b, p in combos if b == "tensorrt"]
        plans = [(r, gpu_plan) for r in runs] + [(("onnxruntime", "fp32", False), ((1, 30), (32, 5)))]
        for (backend, precision, frame_path), plan in plans:
            try:
                e2e += end_to_end(bundle, backend, precision, frames, plan, frame_path)
            except Exception as exc:  # noqa: BLE001 - every backend is measured; failures are listed and fail the run
                errors.append(f"{backend} {precision}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            write(out, head, kernel, e2e, errors)
        try:
            e2e += anomavision_gpu(frames, gpu_plan)
        except Exception as exc:  # noqa: BLE001 - as above
            errors.append(f"AnomaVision GPU: {type(exc).__name__}: {exc} (its wheel: python -m benchmarks.gpu_wheels)")
            traceback.print_exc()
        write(out, head, kernel, e2e, errors)
    print((out / "gpu-bench.md").read_text())
    if errors:
        print("FAILED: " + "; ".join(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""GPU benchmarks (run by benchmarks/gpu_check.sh on a GPU machine).

1. The Mahalanobis kernel at P = 56*56 positions, d = 100, fp16 and fp32
   factor storage, batch 1 and 32, against the memory-bandwidth floor of the
   card (bytes moved / peak bandwidth) and against the full-inverse baseline
   `cupy.einsum('bpi,pij,bpj->bp')` and a batched GEMM (cuBLAS) on the same data.
2. TensorRT engines (FP16, INT8) in the full Inspector pipeline at batch 1
   and 32, beside ONNX Runtime and PyTorch, through `cfnc-edge bench`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import machine


def time_gpu(fn, repeats=50) -> float:
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


def kernel_rows(positions=3136, dim=100) -> list[dict]:
    import cupy as cp

    from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis
    from cfnc_edge.scoring.factor import random_problem
    from cfnc_edge.scoring.packing import unpack

    props = cp.cuda.runtime.getDeviceProperties(0)
    bandwidth = 2 * props["memoryClockRate"] * 1e3 * props["memoryBusWidth"] / 8  # bytes/s
    rng = np.random.default_rng(0)
    packed64, mean, _ = random_problem(rng, 1, dim, positions)
    packed, mean = packed64.astype(np.float32), mean.astype(np.float32)
    w = unpack(packed, dim)
    inv = cp.asarray(w.transpose(0, 2, 1) @ w)
    dense = cp.asarray(unpack(packed, dim))
    out = []
    for batch in (1, 32):
        x = cp.asarray(rng.normal(size=(batch, dim, positions, 1)).astype(np.float32))
        for storage in ("int8", "fp16", "fp32"):
            k = GpuMahalanobis(mean, packed, storage)
            ms = time_gpu(lambda: k(x))
            scale = 0 if k.storage != "int8" else k.scale.nbytes
            moved = k.factor.nbytes + scale + x.nbytes + mean.nbytes + batch * positions * 4
            out.append({"method": f"packed kernel ({storage} factor)", "batch": batch, "ms": ms,
                        "floor_ms": 1e3 * moved / bandwidth, "GB_moved": moved / 1e9})
        delta = (x[..., 0].transpose(0, 2, 1) - cp.asarray(mean)).astype(cp.float32)  # (B, P, d)
        ms = time_gpu(lambda: cp.einsum("bpi,pij,bpj->bp", delta, inv, delta))
        out.append({"method": "full inverse, cupy.einsum", "batch": batch, "ms": ms,
                    "floor_ms": 1e3 * (inv.nbytes + delta.nbytes) / bandwidth, "GB_moved": inv.nbytes / 1e9})
        d_t = cp.ascontiguousarray(delta.transpose(1, 2, 0))  # (P, d, B)
        ms = time_gpu(lambda: (cp.matmul(dense, d_t) ** 2).sum(1))
        out.append({"method": "dense factor, batched GEMM (cuBLAS)", "batch": batch, "ms": ms,
                    "floor_ms": 1e3 * (dense.nbytes + d_t.nbytes) / bandwidth, "GB_moved": dense.nbytes / 1e9})
    return out


def pipeline_rows(work: Path) -> list[dict]:
    from cfnc_edge.api import train
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.deploy.calibrate import calibrate
    from cfnc_edge.deploy.engine import build_engine
    from cfnc_edge.deploy.export import export
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from cfnc_edge.report.bench import run_bench

    data = generate_dataset(work / "data", n_train=64, n_test_good=8, n_per_defect=4, progress=False)
    b = train(data, work / "bundle", ModelConfig(), TrainConfig(epochs=1), progress=False)
    export(b)
    calibrate(b, n=32)
    for p in ("fp16", "int8"):
        build_engine(b, p, 1, 8, 32)
    combos = [("tensorrt", "fp16"), ("tensorrt", "int8"), ("onnxruntime", "fp32"), ("torch", "fp32")]
    return run_bench(b.path, data / "train" / "good", (1, 32), warmup=5, repeats=50, combos=combos, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/gpu")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    from cfnc_edge.report.bench import markdown_table, write_results

    k = kernel_rows()
    lines = ["# GPU benchmarks", "", f"Machine: {machine()}.", "",
             "## Mahalanobis step, P = 3136, d = 100", "",
             "| method | batch | ms | bandwidth floor ms | factor GB |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['batch']} | {r['ms']:.3f} | {r['floor_ms']:.3f} | {r['GB_moved']:.3f} |"
              for r in k]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = pipeline_rows(Path(tmp))
    write_results(rows, out)
    lines += ["", "## Pipeline (cfnc-edge bench)", "", markdown_table(rows)]
    (out / "gpu-bench.md").write_text("\n".join(lines) + "\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

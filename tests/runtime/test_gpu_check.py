"""The offline GPU check's behaviour where it must not run: on a machine
without CUDA it stops at once with one line, before installing anything."""

import subprocess
import time
from pathlib import Path

import pytest

from cfnc_edge.deploy.cuda_stack import driver_cuda

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(driver_cuda() is not None, reason="this machine has an NVIDIA driver")
def test_gpu_check_without_cuda_fails_fast_with_one_line(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    out = tmp_path / "out"
    t = time.perf_counter()
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--wheels", str(wheels), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - t < 60
    assert r.returncode == 2
    assert r.stderr.startswith("error: no CUDA device") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr + r.stdout
    assert not out.exists()  # nothing installed, nothing written


def test_gpu_check_usage_errors():
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--wheels"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "usage: bash benchmarks/gpu_check.sh" in r.stderr


def test_gpu_bench_frame_to_verdict_and_report_run_on_the_cpu(tiny_bundle, tiny_data, tmp_path):
    """The backend-independent half of gpu_bench.py, on a CPU backend, so its
    first GPU run does not fail on bookkeeping."""
    from benchmarks.gpu_bench import FRAME, end_to_end, frames_of, write

    frames = frames_of(tiny_data, 3)
    assert frames[0].shape == (*FRAME, 3)
    rows = end_to_end(tiny_bundle, "torch", "fp32", frames, ((1, 2), (3, 1)))
    assert [(r["batch"], r["device"]) for r in rows] == [(1, "cpu"), (3, "cpu")]
    assert all(r["p50_ms"] > 0 and r["images_per_s"] > 0 for r in rows)
    kernel = [{"method": "packed kernel (fp16 factor)", "batch": 1, "ms": 0.02, "floor_ms": 0.01, "MB_moved": 33.0}]
    peer = {**rows[1], "backend": "AnomaVision PaDiM R18", "path": "its own", "images_per_s": rows[1]["images_per_s"] / 2}
    write(tmp_path, ["# GPU benchmarks", ""], kernel, rows + [peer], ["tensorrt int8: CfncError: example"])
    md = (tmp_path / "gpu-bench.md").read_text()
    assert "| packed kernel (fp16 factor) | 1 | 0.0200 | 0.0100 | 2.0 | 33.0 |" in md
    assert "| torch | fp32 | per-stage | cpu | 3 |" in md and "- tensorrt int8: CfncError: example" in md
    # the ratio to AnomaVision at the same batch; none at a batch it did not run
    assert {line.split(" | ")[4]: line.split(" | ")[8] for line in md.splitlines() if line.startswith("| torch ")} \
        == {"1": "n/a", "3": "2.00x"}
    assert "preprocess" in rows[0]["stages_ms"]  # the stage split of the per-stage path

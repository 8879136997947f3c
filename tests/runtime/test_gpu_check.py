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

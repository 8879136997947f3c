"""The CUDA Mahalanobis kernel, checked without a GPU: the same source runs on
the CPU through kernels/cuda_emulation.h, and compiles with nvcc for every
target. GPU runs of the same checks are in test_gpu.py."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cfnc_edge.runtime.gpu.nvcc import (
    TARGETS,
    compile_kernel,
    find_nvcc,
    ptxas_report,
    supported_archs,
)
from cfnc_edge.scoring.factor import Factor, compress
from cfnc_edge.scoring.reference import random_problem, reference_distance
from cfnc_edge.scoring.packing import unpack

KERNELS = Path(__file__).resolve().parents[2] / "kernels"


def reference(packed, mean, feats):
    """float64: || W (x - mu) || per image and position."""
    return reference_distance(unpack(packed, mean.shape[1]), mean, feats)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ is needed to run the kernel through the emulation header")
    exe = tmp_path_factory.mktemp("emu") / "emulate_mahalanobis"
    subprocess.run([cxx, "-std=c++20", "-O2", "-pthread", "-I", str(KERNELS), "-o", str(exe),
                    str(KERNELS / "emulate_mahalanobis.cpp")], check=True)
    return exe


def run_emulated(exe, tmp_path, factor: Factor, mean, feats, max_b):
    batch, dim, positions = feats.shape
    kind = {"fp32": 0, "fp16": 1, "int8": 2}[factor.precision]
    (tmp_path / "meta.txt").write_text(f"{batch} {dim} {positions} {kind} {max_b}")
    feats.astype(np.float32).tofile(tmp_path / "feats.f32")
    mean.astype(np.float32).tofile(tmp_path / "mean.f32")
    factor.values.tofile(tmp_path / "factor.bin")
    if factor.scale is not None:
        factor.scale.tofile(tmp_path / "scale.f32")
    subprocess.run([str(exe), str(tmp_path)], check=True, timeout=300)
    return np.fromfile(tmp_path / "dist.f32", dtype=np.float32).reshape(batch, positions)


# max |got / ref - 1| against float64 on the true factor: fp32 storage and
# arithmetic; fp16 and int8 add their storage rounding (a value's relative
# error ~2^-11 for fp16; up to 1/254 of the row's largest value for int8,
# which averages out over the row's ~d/2 products)
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-3, "int8": 2e-2}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("dim", [37, 64, 100, 150])  # 37: not a multiple of 32; 150: more row pairs than threads
@pytest.mark.parametrize("batch", [1, 3, 32])
def test_emulated_kernel_matches_float64_reference(emulator, tmp_path, rng, dim, batch, precision):
    positions = 23  # uneven: no power of two, not a multiple of the block size
    packed, mean, feats = random_problem(rng, batch, dim, positions)
    factor = compress(packed, precision)
    max_b = 1 if batch == 1 else 8  # batch 32 runs as 4 chunks of 8, as the wrapper splits
    got = run_emulated(emulator, tmp_path, factor, mean, feats, max_b)
    ref = reference(packed, mean, feats)
    assert ref.min() > 1.0
    # fp32 arithmetic on the stored values: as exact as fp32 storage is...
    np.testing.assert_allclose(got, reference_distance(factor.dense(dim), mean, feats), rtol=1e-4)
    # ...and within the storage's rounding of the true factor
    np.testing.assert_allclose(got, ref, rtol=TOLERANCE[precision])


@pytest.mark.parametrize("arch", TARGETS)
def test_kernel_compiles_without_spills(arch, tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not installed")
    if arch not in supported_archs(nvcc):
        pytest.skip(f"this nvcc cannot target sm_{arch} (CUDA 13 dropped sm_72: build on JetPack 5 or with CUDA 12)")
    r = compile_kernel(nvcc, arch, tmp_path)
    assert r.returncode == 0, r.stderr
    report = ptxas_report(r.stderr)
    assert len(report) >= 6  # {float, half} x MAX_B {1, 8, 32}
    assert all(x["spill_stores"] == 0 and x["spill_loads"] == 0 for x in report), report

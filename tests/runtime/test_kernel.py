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
from cfnc_edge.scoring.packing import unpack

KERNELS = Path(__file__).resolve().parents[2] / "kernels"


def random_problem(rng, batch, dim, positions):
    a = rng.normal(size=(positions, dim, dim))
    w = np.linalg.cholesky(np.linalg.inv(a @ a.transpose(0, 2, 1) / dim + np.eye(dim)))
    rows, cols = np.tril_indices(dim)
    packed = w[:, rows, cols]
    mean = rng.normal(size=(positions, dim))
    feats = rng.normal(size=(batch, dim, positions)) + mean.T[None]
    return packed, mean, feats


def reference(packed, mean, feats):
    """float64: || W (x - mu) || per image and position."""
    dim = mean.shape[1]
    delta = feats.transpose(0, 2, 1) - mean  # (B, P, d)
    return np.sqrt((np.einsum("pij,bpj->bpi", unpack(packed, dim), delta) ** 2).sum(-1))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ is needed to run the kernel through the emulation header")
    exe = tmp_path_factory.mktemp("emu") / "emulate_mahalanobis"
    subprocess.run([cxx, "-std=c++20", "-O2", "-pthread", "-I", str(KERNELS), "-o", str(exe),
                    str(KERNELS / "emulate_mahalanobis.cpp")], check=True)
    return exe


def run_emulated(exe, tmp_path, packed, mean, feats, half, max_b):
    batch, dim, positions = feats.shape
    (tmp_path / "meta.txt").write_text(f"{batch} {dim} {positions} {int(half)} {max_b}")
    feats.astype(np.float32).tofile(tmp_path / "feats.f32")
    mean.astype(np.float32).tofile(tmp_path / "mean.f32")
    packed.astype(np.float16 if half else np.float32).tofile(tmp_path / "factor.bin")
    subprocess.run([str(exe), str(tmp_path)], check=True, timeout=300)
    return np.fromfile(tmp_path / "dist.f32", dtype=np.float32).reshape(batch, positions)


@pytest.mark.parametrize("dim", [37, 64, 100, 150])  # 37: not a multiple of 32; 150: more row pairs than threads
@pytest.mark.parametrize("batch", [1, 3, 32])
def test_emulated_kernel_matches_float64_reference(emulator, tmp_path, rng, dim, batch):
    positions = 23  # uneven: no power of two, not a multiple of the block size
    packed, mean, feats = random_problem(rng, batch, dim, positions)
    max_b = 1 if batch == 1 else 8  # batch 32 runs as 4 chunks of 8, as the wrapper splits
    got = run_emulated(emulator, tmp_path, packed, mean, feats, False, max_b)
    ref = reference(packed, mean, feats)
    assert ref.min() > 1.0
    np.testing.assert_allclose(got, ref, rtol=1e-4)  # fp32 storage and arithmetic


def test_emulated_kernel_with_fp16_factor(emulator, tmp_path, rng):
    packed, mean, feats = random_problem(rng, 3, 100, 19)
    got = run_emulated(emulator, tmp_path, packed, mean, feats, True, 8)
    # exact against the fp16-rounded factor in float64 (fp32 arithmetic)...
    np.testing.assert_allclose(got, reference(packed.astype(np.float16).astype(np.float64), mean, feats), rtol=1e-4)
    # ...and within fp16 storage error of the true factor
    np.testing.assert_allclose(got, reference(packed, mean, feats), rtol=5e-3)


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

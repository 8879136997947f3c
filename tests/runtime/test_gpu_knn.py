"""The CuPy nearest-neighbour path against a float64 exhaustive search.
Skipped without CuPy and an NVIDIA GPU (as every GPU test here)."""

import numpy as np
import pytest

from tests.gpu_support import gpu_module

cupy, pytestmark = gpu_module("the GPU memory-bank path needs CuPy")


@pytest.mark.parametrize("storage", ["fp32", "fp16"])
def test_cupy_search_matches_float64(rng, storage):
    from cfnc_edge.deploy.parity import brute_force_distances
    from cfnc_edge.runtime.gpu.knn import GpuNearestNeighbour
    from tests.scoring.test_memory_bank import TOL, random_problem, rel_err

    feats, bank, center = random_problem(rng, rows=40000)  # two bank chunks
    got = cupy.asnumpy(GpuNearestNeighbour(bank, center, storage)(feats))
    stored = bank if storage == "fp32" else bank.astype(np.float16).astype(np.float32)
    assert rel_err(brute_force_distances(feats, stored, center), got) <= TOL["fp32"]
    assert rel_err(brute_force_distances(feats, bank, center), got) <= TOL[storage]


def test_gpu_scoring_picks_the_bank(rng):
    from cfnc_edge.runtime.gpu.knn import GpuNearestNeighbour
    from cfnc_edge.runtime.gpu.scoring import GpuScoring
    from tests.scoring.test_memory_bank import random_problem

    _, bank, center = random_problem(rng, rows=100)
    s = GpuScoring({"bank": bank, "center": center, "part": np.zeros(100, np.int32)}, cupy.cuda.Stream())
    assert isinstance(s.distance, GpuNearestNeighbour)

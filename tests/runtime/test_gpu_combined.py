"""The combined scorer on the GPU against the CPU one (itself checked against
float64 in tests/scoring/test_combined.py), on random data, and through
GpuScoring's maps. Skipped without CuPy and an NVIDIA GPU."""

import numpy as np

from tests.gpu_support import gpu_module

cupy, pytestmark = gpu_module("the GPU combined scorer needs CuPy")

# The GPU keeps the whitening factor and the bank in fp16 (as for the single
# scorers); both GPU distances agree with float64 on the fp16-rounded tensors
# to ~1e-5 (tests/runtime/test_gpu.py, test_gpu_knn.py), with the fp32 ones to
# the fp16 rounding: 5e-3 of the largest fused distance covers both.
TOL = 5e-3


def combined_problem(rng, b=3, d=24, h=14, w=10, c=40, s=(7, 5)):
    import torch
    import torch.nn.functional as F

    from cfnc_edge.scoring.reference import random_problem

    packed, mean, proj = random_problem(rng, b, d, h * w)
    bank = rng.standard_normal((500, c)).astype(np.float32) + 3.0
    center = bank.astype(np.float64).mean(0).astype(np.float32)
    pooled = (rng.standard_normal((b, c, *s)) * 1.5 + 3.0).astype(np.float32)
    feats = torch.cat([torch.from_numpy(proj.reshape(b, d, h, w).astype(np.float32)),
                       F.interpolate(torch.from_numpy(pooled), size=(h, w), mode="nearest")], 1).numpy()
    scorer = {"mean": mean.astype(np.float32), "factor": packed.astype(np.float32), "bank": bank - center,
              "center": center, "fusion": np.array([4.0, 2.5]), "pooled_shape": np.array(s, np.int64)}
    return scorer, feats


def test_gpu_combined_matches_cpu(rng):
    from cfnc_edge.runtime.gpu.combined import GpuCombined
    from cfnc_edge.runtime.gpu.scoring import GpuScoring
    from cfnc_edge.runtime.scoring import CpuScoring

    scorer, feats = combined_problem(rng)
    cpu = CpuScoring(scorer)
    gpu = GpuScoring(scorer, cupy.cuda.Stream(non_blocking=True))
    assert isinstance(gpu.distance, GpuCombined)
    ref = cpu.distance(feats)
    with gpu.context():
        got = gpu.distance(cupy.asarray(feats))
        assert isinstance(got, cupy.ndarray)
        got = gpu.to_host(got)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOL
    thetas = np.broadcast_to(np.eye(2, 3, dtype=np.float32), (len(feats), 2, 3))
    with gpu.context():
        maps = gpu.to_host(gpu.maps(gpu.distance(feats), thetas, 56))
    ref_maps = cpu.maps(ref, thetas, 56)
    assert np.abs(maps - ref_maps).max() / np.abs(ref_maps).max() <= TOL

import numpy as np
import pytest

from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor
from cfnc_edge.scoring.packing import packed_dim, unpack


def random_features(rng, n, d, h, w):
    # correlated, offset features: a plain N(0, 1) would hide covariance bugs
    mix = rng.normal(size=(d, d))
    x = rng.normal(size=(n, h * w, d)) @ mix + rng.normal(5, 2, size=(h * w, d))
    return x.reshape(n, h, w, d).transpose(0, 3, 1, 2)


def test_streaming_statistics_match_float64_reference(rng):
    n, d, h, w = 37, 9, 3, 4
    x = random_features(rng, n, d, h, w)
    acc = GaussianAccumulator(h * w, d)
    for a, b in ((0, 5), (5, 6), (6, 20), (20, 37)):  # uneven batches, one of size 1
        acc.update(x[a:b].astype(np.float32))
    mean, cov = acc.finalize(eps=0.01)
    flat = x.astype(np.float32).astype(np.float64).reshape(n, d, h * w)
    for p in range(h * w):
        ref_cov = np.cov(flat[:, :, p], rowvar=False) + 0.01 * np.eye(d)
        np.testing.assert_allclose(mean[p], flat[:, :, p].mean(0), rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(cov[p], ref_cov, rtol=1e-9, atol=1e-9)


def test_accumulator_memory_does_not_grow_with_images(rng):
    acc = GaussianAccumulator(6, 4)
    sizes = {acc.s2.nbytes}
    for _ in range(10):
        acc.update(rng.normal(size=(8, 4, 2, 3)))
        sizes.add(acc.s2.nbytes + acc.s1.nbytes)
    assert len(sizes) == 2 and acc.n == 80  # fixed after the first batch


def test_whitening_factor_gives_mahalanobis_distance(rng):
    p, d = 5, 7
    a = rng.normal(size=(p, d, d))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)
    packed = whitening_factor(cov, chunk=2)
    assert packed.shape == (p, d * (d + 1) // 2) and packed_dim(packed.shape[1]) == d
    w = unpack(packed, d)
    assert np.allclose(np.triu(w, 1), 0)
    delta = rng.normal(size=(p, d))
    ref = np.einsum("pi,pij,pj->p", delta, np.linalg.inv(cov), delta)
    got = np.sum(np.einsum("pij,pj->pi", w, delta) ** 2, axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_cpu_distance_matches_float64_reference(rng, batch):
    d, h, w = 12, 4, 5
    train = random_features(rng, 200, d, h, w)
    acc = GaussianAccumulator(h * w, d)
    acc.update(train)
    mean, cov = acc.finalize(0.01)
    dist = CpuMahalanobis(mean, whitening_factor(cov))
    x = random_features(rng, batch, d, h, w).astype(np.float32)
    got = dist(x)
    xs = x.astype(np.float64).reshape(batch, d, h * w)
    inv = np.linalg.inv(cov)
    ref = np.empty((batch, h * w))
    for b in range(batch):
        delta = xs[b].T - mean
        ref[b] = np.sqrt(np.einsum("pi,pij,pj->p", delta, inv, delta))
    # float32 storage and arithmetic: 1e-4 relative is the stated tolerance
    np.testing.assert_allclose(got.reshape(batch, -1), ref, rtol=1e-4)
    assert ref.min() > 0.5  # a real distance, not a trivially-zero case


def test_distance_refuses_features_of_another_shape(rng):
    dist = CpuMahalanobis(rng.normal(size=(6, 3)), whitening_factor(np.broadcast_to(np.eye(3), (6, 3, 3)).copy()))
    with pytest.raises(ValueError, match="channels"):
        dist(rng.normal(size=(1, 4, 2, 3)).astype(np.float32))
